/**
 * Login attempts counted in the machine's Redis: two counters (two replicas) share one budget;
 * Redis cut: fail open counts locally, fail closed refuses; both work again when it returns.
 */
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { createMemoryAttemptCounter } from "../../src/authn/attempt-counter.js";
import { createLoginLimiter } from "../../src/authn/login-limiter.js";
import type { ClosableAttemptCounter } from "../../src/authn/attempt-counter.js";
import { createRedisAttemptCounter } from "../../src/bus/attempt-counter-redis.js";
import { startTcpProxy } from "../helpers/tcp-proxy.js";
import { TEST_REDIS_URL } from "../helpers/verdict.js";

const counters: ClosableAttemptCounter[] = [];
function counter(prefix: string, failOpen = true, url = TEST_REDIS_URL): ClosableAttemptCounter {
  const c = createRedisAttemptCounter({ url, prefix, timeoutMs: 300, fallback: failOpen ? createMemoryAttemptCounter() : undefined });
  counters.push(c);
  return c;
}
afterAll(async () => {
  for (const c of counters) await c.close();
});

const prefix = () => `verdict:it:${randomBytes(4).toString("hex")}`;

describe("Redis attempt counter", () => {
  it("shares one budget between replicas, with the window's end", async () => {
    const p = prefix();
    const [a, b] = [counter(p), counter(p)];
    const now = Date.now();
    expect(await a.take("k", 3, 60_000, now)).toMatchObject({ counted: true });
    expect(await b.take("k", 3, 60_000, now)).toMatchObject({ counted: true });
    expect(await a.take("k", 3, 60_000, now)).toMatchObject({ counted: true });
    const refused = await b.take("k", 3, 60_000, now);
    expect(refused.counted).toBe(false);
    expect(refused.resetAtMs - now).toBeGreaterThan(59_000);
    expect(refused.resetAtMs - now).toBeLessThanOrEqual(60_000);
    await a.giveBack("k", now);
    expect((await b.take("k", 3, 60_000, now)).counted).toBe(true);
    await b.clear("k");
    expect((await a.take("k", 3, 60_000, now)).counted).toBe(true);
  });

  it("starts a new window when the last one expires", async () => {
    const a = counter(prefix());
    const now = Date.now();
    expect((await a.take("k", 1, 100, now)).counted).toBe(true);
    expect((await a.take("k", 1, 100, now)).counted).toBe(false);
    await new Promise((r) => setTimeout(r, 150));
    expect((await a.take("k", 1, 100, Date.now())).counted).toBe(true);
  });

  it("limits password guessing across three replicas to one budget", async () => {
    const p = prefix();
    const limiters = [0, 1, 2].map(() => createLoginLimiter({ maxFailures: 5, maxFailuresPerAddress: 50, windowMs: 60_000, counter: counter(p) }));
    const outcomes = [];
    for (let i = 0; i < 9; i++) outcomes.push((await limiters[i % 3].reserve("alice", "10.0.0.1", Date.now())).allowed);
    expect(outcomes).toEqual([true, true, true, true, true, false, false, false, false]);
  });

  it.each([
    ["fails open: counts on this replica while Redis is away", true],
    ["fails closed: refuses every attempt while Redis is away", false],
  ])("%s, and recovers", async (_name, failOpen) => {
    const redis = new URL(TEST_REDIS_URL);
    const proxy = await startTcpProxy(redis.hostname, Number(redis.port || 6379));
    const a = counter(prefix(), failOpen, `redis://127.0.0.1:${proxy.port}`);
    try {
      expect((await a.take("k", 2, 60_000, Date.now())).counted).toBe(true);
      await proxy.cut();
      const during = [(await a.take("k", 2, 60_000, Date.now())).counted, (await a.take("k", 2, 60_000, Date.now())).counted, (await a.take("k", 2, 60_000, Date.now())).counted];
      expect(during).toEqual(failOpen ? [true, true, false] : [false, false, false]);
      await proxy.restore();
      const deadline = Date.now() + 5000;
      let counted = false;
      // Redis still holds 1 of 2: one more attempt counts there once the connection is back.
      while (!counted && Date.now() < deadline) {
        counted = (await a.take("k", 2, 60_000, Date.now())).counted;
        if (!counted) await new Promise((r) => setTimeout(r, 100));
      }
      expect(counted).toBe(true);
      expect((await a.take("k", 2, 60_000, Date.now())).counted).toBe(false);
    } finally {
      await proxy.close();
    }
  });
});
