/**
 * Login attempts counted in the machine's Redis: two counters (two replicas) share one budget;
 * Redis cut: fail open counts locally, fail closed refuses; both work again when it returns. A
 * counter key holding something that is no count (`inf`, `nan`, text, another type) is reset and
 * reported, never a lockout; a count left without expiry gets one.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { createMemoryAttemptCounter } from "../../src/authn/attempt-counter.js";
import { createLoginLimiter } from "../../src/authn/login-limiter.js";
import type { ClosableAttemptCounter } from "../../src/authn/attempt-counter.js";
import { createRedisAttemptCounter } from "../../src/bus/attempt-counter-redis.js";
import { startTcpProxy } from "../helpers/tcp-proxy.js";
import { createLogger } from "../../src/observability/logger.js";
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
const WINDOW = 60_000;

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

  describe("a counter key that holds no count", () => {
    const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true });
    afterAll(() => redis.disconnect());

    /** A fail-closed counter (a script error would refuse every attempt) with its reports. */
    function watched() {
      const p = prefix();
      const bad: string[] = [];
      const failures: unknown[] = [];
      const c = createRedisAttemptCounter({ url: TEST_REDIS_URL, prefix: p, timeoutMs: 1000, fallback: undefined, onFailure: (e) => void failures.push(e), onBadValue: (k) => void bad.push(k) });
      counters.push(c);
      return { c, key: `${p}:login:alice`, bad, failures };
    }

    const garbage: Array<[string, (key: string) => Promise<unknown>]> = [
      ...["inf", "-inf", "+inf", "nan", "1e3", "0x10", "3.5", " 3", "3 ", "-5", "", "abc", "99999999999999999999"].map(
        (value) => [JSON.stringify(value), (key: string) => redis.set(key, value)] as [string, (key: string) => Promise<unknown>],
      ),
      ["inf with an expiry", (key) => redis.set(key, "inf", "PX", WINDOW)],
      ["a hash", (key) => redis.hset(key, "n", "1")],
      ["a list", (key) => redis.rpush(key, "1")],
    ];

    it.each(garbage)("%s: the attempt is counted as a new window's first, and reported", async (_what, write) => {
      const { c, key, bad, failures } = watched();
      await write(key);
      const now = Date.now();
      const taken = await c.take("alice", 3, WINDOW, now);
      expect(taken.counted).toBe(true);
      expect(taken.resetAtMs - now).toBeGreaterThan(WINDOW - 2000);
      expect(taken.resetAtMs - now).toBeLessThanOrEqual(WINDOW);
      expect([await redis.get(key), (await redis.pttl(key)) > WINDOW - 2000]).toEqual(["1", true]);
      expect({ bad, failures }).toEqual({ bad: [key], failures: [] });
      expect((await c.take("alice", 3, WINDOW, now)).counted).toBe(true);
      expect((await c.take("alice", 3, WINDOW, now)).counted).toBe(true);
      expect((await c.take("alice", 3, WINDOW, now)).counted).toBe(false);
      expect(bad).toEqual([key]);
    });

    it.each(garbage)("%s: giving an attempt back resets it, and reports it", async (_what, write) => {
      const { c, key, bad, failures } = watched();
      await c.take("bob", 1, WINDOW, Date.now()); // connected, as after the take a give-back follows
      await write(key);
      await c.giveBack("alice", Date.now());
      expect({ value: await redis.exists(key), bad, failures }).toEqual({ value: 0, bad: [key], failures: [] });
      expect((await c.take("alice", 1, WINDOW, Date.now())).counted).toBe(true);
    });

    it("warns at most once a minute, saying how many were reset", async () => {
      const p = prefix();
      const warnings: Array<[string, Record<string, unknown> | undefined]> = [];
      const logger = { ...createLogger("error"), warn: (msg: string, fields?: Record<string, unknown>) => void warnings.push([msg, fields]) };
      const c = createRedisAttemptCounter({ url: TEST_REDIS_URL, prefix: p, timeoutMs: 1000, fallback: undefined, logger });
      counters.push(c);
      for (const user of ["a", "b", "c"]) {
        await redis.set(`${p}:login:${user}`, "inf");
        expect((await c.take(user, 3, WINDOW, Date.now())).counted).toBe(true);
      }
      expect(warnings).toEqual([[expect.stringContaining("reset"), { reset: 1, prefix: `${p}:login:` }]]);
    });

    it("a count left without expiry keeps counting, and gets the window's expiry instead of locking the key out for ever", async () => {
      const { c, key, bad, failures } = watched();
      await redis.set(key, "5");
      const now = Date.now();
      const refused = await c.take("alice", 3, WINDOW, now);
      expect(refused.counted).toBe(false);
      expect(refused.resetAtMs - now).toBeGreaterThan(WINDOW - 2000);
      expect(await redis.pttl(key)).toBeGreaterThan(WINDOW - 2000);
      expect({ value: await redis.get(key), bad, failures }).toEqual({ value: "5", bad: [], failures: [] });
    });
  });
});
