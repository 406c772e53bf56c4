/**
 * The Redis exchange of rate-limit counts, on the machine's Redis: the drivers' contract (totals
 * over the sliding window, slots leaving it, live replicas), pushes split in batches, and a
 * rejected push while Redis is unreachable.
 */
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import type { RateLimitSync } from "../../src/bus/rate-limit-sync.js";
import { createRedisRateLimitSync } from "../../src/bus/rate-limit-sync-redis.js";
import { startTcpProxy } from "../helpers/tcp-proxy.js";
import { TEST_REDIS_URL } from "../helpers/verdict.js";
import { CONTRACT_SETTINGS, runRateLimitSyncContract } from "./rate-limit-sync.contract.js";

const syncs: RateLimitSync[] = [];
function sync(prefix: string, replicaId: string, url = TEST_REDIS_URL): RateLimitSync {
  const s = createRedisRateLimitSync({ ...CONTRACT_SETTINGS, url, prefix, replicaId });
  syncs.push(s);
  return s;
}
afterAll(async () => {
  for (const s of syncs) await s.close();
});

runRateLimitSyncContract({
  driver: "redis",
  fleet() {
    const prefix = `verdict:it:${randomBytes(4).toString("hex")}`;
    return (replicaId) => sync(prefix, replicaId);
  },
});

describe("Redis rate-limit exchange", () => {
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
