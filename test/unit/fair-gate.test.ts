import { describe, expect, it } from "vitest";
import { GateFullError, createFairGate } from "../../src/authn/fair-gate.js";

/** A task that finishes when told to, recording when it started. */
function task(log: string[], name: string) {
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  return { run: async () => (log.push(name), done), finish };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("fair gate", () => {
  it("runs at most maxConcurrent tasks at once", async () => {
    const gate = createFairGate({ maxConcurrent: 2, maxWaiting: 10, maxWaitingPerSource: 10 });
    const log: string[] = [];
    const tasks = ["a", "b", "c"].map((n) => task(log, n));
    const runs = tasks.map((t) => gate.run("s", t.run));
    await tick();
    expect(log).toEqual(["a", "b"]);
    tasks[0].finish();
    await tick();
    expect(log).toEqual(["a", "b", "c"]);
    tasks[1].finish();
    tasks[2].finish();
    await Promise.all(runs);
  });

  it("serves a source that just arrived before another turn of a busy source", async () => {
    const gate = createFairGate({ maxConcurrent: 1, maxWaiting: 100, maxWaitingPerSource: 100 });
    const log: string[] = [];
    const flood = Array.from({ length: 10 }, (_, i) => task(log, `flood-${i}`));
    const runs = flood.map((t) => gate.run("10.0.0.2", t.run));
    await tick();
    flood[0].finish();
    await tick();
    const real = task(log, "real");
    const other = task(log, "other");
    runs.push(gate.run("10.0.0.1", real.run), gate.run("10.0.0.3", other.run));
    flood[1].finish();
    await tick();
    expect(log.at(-1)).toBe("real");
    real.finish();
    await tick();
    expect(log.at(-1)).toBe("other");
    other.finish();
    for (const t of flood) t.finish();
    await Promise.all(runs);
    expect(log).toHaveLength(12);
  });

  it("takes turns between busy sources", async () => {
    const gate = createFairGate({ maxConcurrent: 1, maxWaiting: 100, maxWaitingPerSource: 100 });
    const log: string[] = [];
    const blocker = task(log, "blocker");
    const runs = [gate.run("x", blocker.run)];
    for (const source of ["a", "b"]) for (let i = 0; i < 3; i++) runs.push(gate.run(source, async () => void log.push(`${source}${i}`)));
    blocker.finish();
    await Promise.all(runs);
    expect(log).toEqual(["blocker", "a0", "b0", "a1", "b1", "a2", "b2"]);
  });

  it("refuses beyond maxWaitingPerSource and maxWaiting, and survives a failing task", async () => {
    const gate = createFairGate({ maxConcurrent: 1, maxWaiting: 3, maxWaitingPerSource: 2 });
    const log: string[] = [];
    const running = task(log, "running");
    const first = gate.run("x", running.run);
    const waiting = [gate.run("a", async () => "a1"), gate.run("a", async () => "a2")];
    await expect(gate.run("a", async () => "a3")).rejects.toBeInstanceOf(GateFullError);
    const b = gate.run("b", async () => {
      throw new Error("boom");
    });
    await expect(gate.run("c", async () => "c")).rejects.toBeInstanceOf(GateFullError);
    running.finish();
    await first;
    await expect(b).rejects.toThrow("boom");
    expect(await Promise.all(waiting)).toEqual(["a1", "a2"]);
    expect(await gate.run("c", async () => "c")).toBe("c");
  });

  it("refuses invalid bounds", () => {
    expect(() => createFairGate({ maxConcurrent: 0, maxWaiting: 1, maxWaitingPerSource: 1 })).toThrow(/maxConcurrent/);
    expect(() => createFairGate({ maxConcurrent: 1, maxWaiting: -1, maxWaitingPerSource: 1 })).toThrow(/maxWaiting/);
  });
});
