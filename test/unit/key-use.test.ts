import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createKeyUseRecorder } from "../../src/engine/key-use.js";

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

function recorder(options: { maxPending?: number; fail?: boolean } = {}) {
  const batches: Array<Map<string, number>> = [];
  const failures: unknown[] = [];
  let dropped = 0;
  const keyUse = createKeyUseRecorder({
    flushIntervalMs: 5000,
    maxPending: options.maxPending ?? 100,
    async write(uses) {
      if (options.fail) throw new Error("store away");
      batches.push(new Map(uses));
    },
    onDropped: () => dropped++,
    onFlushFailed: (error) => failures.push(error),
  });
  return { keyUse, batches, failures, dropped: () => dropped };
}

describe("API key use recorder", () => {
  it("writes the latest use of each key once per interval", async () => {
    const { keyUse, batches } = recorder();
    keyUse.record("k1", 10);
    keyUse.record("k2", 20);
    keyUse.record("k1", 30);
    await vi.advanceTimersByTimeAsync(4999);
    expect(batches).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(batches).toEqual([new Map([["k1", 30], ["k2", 20]])]);
    keyUse.record("k2", 40);
    await vi.advanceTimersByTimeAsync(5000);
    expect(batches[1]).toEqual(new Map([["k2", 40]]));
    await vi.advanceTimersByTimeAsync(20_000);
    expect(batches).toHaveLength(2);
    await keyUse.close();
  });

  it("writes a large batch in statements of at most 2000 keys, one after the other, and every key once", async () => {
    const { keyUse, batches } = recorder({ maxPending: 10_000 });
    for (let i = 0; i < 4500; i++) keyUse.record(`k${i}`, i);
    await keyUse.flush();
    expect(batches.map((b) => b.size)).toEqual([2000, 2000, 500]);
    const all = new Map(batches.flatMap((b) => [...b]));
    expect(all.size).toBe(4500);
    expect(all.get("k4499")).toBe(4499);
    await keyUse.close();
  });

  it("reports a failed statement and still writes the others", async () => {
    const batches: Array<Map<string, number>> = [];
    const failures: unknown[] = [];
    let calls = 0;
    const keyUse = createKeyUseRecorder({
      flushIntervalMs: 5000,
      maxPending: 10_000,
      async write(uses) {
        if (++calls === 1) throw new Error("store away");
        batches.push(new Map(uses));
      },
      onDropped: () => {},
      onFlushFailed: (error) => failures.push(error),
    });
    for (let i = 0; i < 4500; i++) keyUse.record(`k${i}`, i);
    await keyUse.flush();
    expect(failures).toHaveLength(1);
    expect(batches.map((b) => b.size)).toEqual([2000, 500]);
    await keyUse.close();
  });

  it("counts a drop for every new key beyond the bound, never for a key already pending", async () => {
    const { keyUse, batches, dropped } = recorder({ maxPending: 2 });
    keyUse.record("k1", 1);
    keyUse.record("k2", 2);
    keyUse.record("k3", 3);
    keyUse.record("k4", 4);
    keyUse.record("k1", 5);
    expect(dropped()).toBe(2);
    await keyUse.flush();
    keyUse.record("k3", 6);
    await keyUse.close();
    expect(batches).toEqual([new Map([["k1", 5], ["k2", 2]]), new Map([["k3", 6]])]);
    expect(dropped()).toBe(2);
  });

  it("reports a failed write and keeps recording", async () => {
    const { keyUse, failures } = recorder({ fail: true });
    keyUse.record("k1", 1);
    await vi.advanceTimersByTimeAsync(5000);
    expect(failures).toHaveLength(1);
    expect((failures[0] as Error).message).toBe("store away");
    keyUse.record("k1", 2);
    await keyUse.flush();
    expect(failures).toHaveLength(2);
  });

  it("flushes what is pending on close and then stops", async () => {
    const { keyUse, batches } = recorder();
    keyUse.record("k1", 1);
    await keyUse.close();
    expect(batches).toEqual([new Map([["k1", 1]])]);
    keyUse.record("k2", 2);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(batches).toHaveLength(1);
  });
});
