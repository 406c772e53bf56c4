/**
 * The Redis exchange of rate-limit counts, on the machine's Redis: totals over the sliding
 * window, slots leaving it, live replicas, and a rejected push while Redis is unreachable.
 */
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { type RateLimitSync, createRedisRateLimitSync } from "../../src/bus/rate-limit-sync.js";
import { startTcpProxy } from "../helpers/tcp-proxy.js";
import { TEST_REDIS_URL } from "../helpers/verdict.js";

const RING = 21;
const syncs: RateLimitSync[] = [];
function sync(prefix: string, replicaId: string, url = TEST_REDIS_URL): RateLimitSync {
  const s = createRedisRateLimitSync({ url, prefix, replicaId, ring: RING, minuteTtlMs: 70_000, hourTtlMs: 4_000_000, liveMs: 2000, timeoutMs: 500 });
  syncs.push(s);
  return s;
}
afterAll(async () => {
  for (const s of syncs) await s.close();
});

describe("Redis rate-limit exchange", () => {
  it("adds each replica's units and answers the fleet's totals in both windows", async () => {
    const prefix = `verdict:it:${randomBytes(4).toString("hex")}`;
    const a = sync(prefix, "a");
    const b = sync(prefix, "b");
    const now = Date.now();
    expect(await a.push([{ name: "k:one", units: 3 }, { name: "k:two", units: 1 }], 1000, 50, now)).toEqual({ replicas: 1, totals: [3, 3, 1, 1] });
    expect(await b.push([{ name: "k:one", units: 4 }], 1001, 50, now)).toEqual({ replicas: 2, totals: [7, 7] });
    // Asking with 0 units reads without adding.
    expect(await a.push([{ name: "k:one", units: 0 }], 1001, 50, now)).toEqual({ replicas: 2, totals: [7, 7] });
  });

  it("drops slots that left the window: a unit counts in its slot and the 20 after it", async () => {
    const prefix = `verdict:it:${randomBytes(4).toString("hex")}`;
    const a = sync(prefix, "a");
    const now = Date.now();
    await a.push([{ name: "u:x", units: 5 }], 100, 7, now);
    await a.push([{ name: "u:x", units: 2 }], 110, 7, now);
    expect((await a.push([{ name: "u:x", units: 0 }], 120, 7, now)).totals).toEqual([7, 7]);
    expect((await a.push([{ name: "u:x", units: 0 }], 121, 7, now)).totals).toEqual([2, 7]);
    expect((await a.push([{ name: "u:x", units: 0 }], 131, 28, now)).totals).toEqual([0, 0]);
  });

  it("forgets replicas that stopped pushing", async () => {
    const prefix = `verdict:it:${randomBytes(4).toString("hex")}`;
    const a = sync(prefix, "a");
    const b = sync(prefix, "b");
    const now = Date.now();
    await b.push([], 1, 1, now - 5000);
    expect((await a.push([], 1, 1, now)).replicas).toBe(1);
    await b.push([], 1, 1, now);
    expect((await a.push([], 1, 1, now)).replicas).toBe(2);
  });

  it("pushes many credentials in batches, in order", async () => {
    const prefix = `verdict:it:${randomBytes(4).toString("hex")}`;
    const a = sync(prefix, "a");
    const pushes = Array.from({ length: 450 }, (_, i) => ({ name: `k:${i}`, units: i }));
    const { totals } = await a.push(pushes, 5, 5, Date.now());
    expect(totals).toHaveLength(900);
    expect(totals[2 * 449]).toBe(449);
    expect(totals[2 * 449 + 1]).toBe(449);
  });

  it("rejects a push while Redis is unreachable, and works again when it returns", async () => {
    const redis = new URL(TEST_REDIS_URL);
    const proxy = await startTcpProxy(redis.hostname, Number(redis.port || 6379));
    const a = sync(`verdict:it:${randomBytes(4).toString("hex")}`, "a", `redis://127.0.0.1:${proxy.port}`);
    try {
      expect((await a.push([{ name: "k:z", units: 1 }], 1, 1, Date.now())).totals).toEqual([1, 1]);
      await proxy.cut();
      await expect(a.push([{ name: "k:z", units: 1 }], 1, 1, Date.now())).rejects.toThrow();
      await proxy.restore();
      const deadline = Date.now() + 5000;
      let totals: readonly number[] = [];
      while (Date.now() < deadline) {
        try {
          totals = (await a.push([{ name: "k:z", units: 1 }], 1, 1, Date.now())).totals;
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      expect(totals).toEqual([2, 2]);
    } finally {
      await proxy.close();
    }
  });
});
