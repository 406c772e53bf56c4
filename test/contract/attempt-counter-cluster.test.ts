/**
 * Login attempts counted by the primary of VERDICT_WORKERS without Redis, over a pretend IPC
 * channel (test/helpers/fake-cluster.ts): workers share one budget; a primary that does not
 * answer: fail open counts on the worker, fail closed refuses; both recover when it answers again.
 */
import { afterAll, describe, expect, it } from "vitest";
import { type ClosableAttemptCounter, createMemoryAttemptCounter } from "../../src/authn/attempt-counter.js";
import { createLoginLimiter } from "../../src/authn/login-limiter.js";
import { createClusterAttemptCounter, serveClusterAttempts } from "../../src/bus/attempt-counter-cluster.js";
import { fakeCluster } from "../helpers/fake-cluster.js";

const counters: ClosableAttemptCounter[] = [];
const stops: Array<() => void> = [];
afterAll(async () => {
  for (const c of counters) await c.close();
  for (const stop of stops) stop();
});

/** A primary counting attempts, and a function opening one worker's counter. */
function primary() {
  const joined = fakeCluster();
  stops.push(serveClusterAttempts(joined.cluster));
  let failures = 0;
  const open = (failOpen = true) => {
    const c = createClusterAttemptCounter({
      timeoutMs: 100,
      fallback: failOpen ? createMemoryAttemptCounter() : undefined,
      onFailure: () => failures++,
      channel: joined.worker().channel,
    });
    counters.push(c);
    return c;
  };
  return { ...joined, open, failures: () => failures };
}

describe("attempt counter over IPC", () => {
  it("shares one budget between workers, with the window's end", async () => {
    const p = primary();
    const [a, b] = [p.open(), p.open()];
    const now = Date.now();
    expect(await a.take("k", 3, 60_000, now)).toMatchObject({ counted: true });
    expect(await b.take("k", 3, 60_000, now)).toMatchObject({ counted: true });
    expect(await a.take("k", 3, 60_000, now)).toMatchObject({ counted: true });
    expect(await b.take("k", 3, 60_000, now)).toEqual({ counted: false, resetAtMs: now + 60_000 });
    await a.giveBack("k", now);
    expect((await b.take("k", 3, 60_000, now)).counted).toBe(true);
    await b.clear("k");
    expect((await a.take("k", 3, 60_000, now)).counted).toBe(true);
    expect(p.failures()).toBe(0);
  });

  it("limits password guessing across three workers to one budget", async () => {
    const p = primary();
    const limiters = [0, 1, 2].map(() => createLoginLimiter({ maxFailures: 5, maxFailuresPerAddress: 50, windowMs: 60_000, counter: p.open() }));
    const outcomes = [];
    for (let i = 0; i < 9; i++) outcomes.push((await limiters[i % 3].reserve("alice", "10.0.0.1", Date.now())).allowed);
    expect(outcomes).toEqual([true, true, true, true, true, false, false, false, false]);
  });

  it.each([
    ["fails open: counts on this worker while the primary does not answer", true],
    ["fails closed: refuses every attempt while the primary does not answer", false],
  ])("%s, and recovers", async (_name, failOpen) => {
    const p = primary();
    const a = p.open(failOpen);
    expect((await a.take("k", 2, 60_000, Date.now())).counted).toBe(true);
    p.silence();
    const during = [];
    for (let i = 0; i < 3; i++) during.push((await a.take("k", 2, 60_000, Date.now())).counted);
    expect(during).toEqual(failOpen ? [true, true, false] : [false, false, false]);
    expect(p.failures()).toBe(3);
    p.resume();
    // The primary still holds 1 of 2.
    expect((await a.take("k", 2, 60_000, Date.now())).counted).toBe(true);
    expect((await a.take("k", 2, 60_000, Date.now())).counted).toBe(false);
  });
});
