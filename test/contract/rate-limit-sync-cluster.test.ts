/**
 * The exchange of rate-limit counts between the workers of one process without Redis: worker
 * channels and a primary joined in this process, with messages copied and delivered later as IPC
 * does. The drivers' contract, then what only IPC has: an unanswered push, a closed channel, a
 * worker that exits, and the primary forgetting credentials whose counts expired.
 */
import { afterAll, describe, expect, it } from "vitest";
import { FleetCounts } from "../../src/bus/fleet-counts.js";
import type { RateLimitSync } from "../../src/bus/rate-limit-sync.js";
import { createClusterRateLimitSync, serveClusterRateLimits } from "../../src/bus/rate-limit-sync-cluster.js";
import { fakeCluster } from "../helpers/fake-cluster.js";
import { CONTRACT_SETTINGS, runRateLimitSyncContract } from "./rate-limit-sync.contract.js";

const syncs: RateLimitSync[] = [];
const stops: Array<() => void> = [];
afterAll(async () => {
  for (const s of syncs) await s.close();
  for (const stop of stops) stop();
});

function fleet(counts?: FleetCounts) {
  const joined = fakeCluster();
  stops.push(serveClusterRateLimits(joined.cluster, CONTRACT_SETTINGS, counts));
  const open = (timeoutMs: number = CONTRACT_SETTINGS.timeoutMs) => {
    const w = joined.worker();
    const sync = createClusterRateLimitSync({ timeoutMs, channel: w.channel });
    syncs.push(sync);
    return { sync, ...w };
  };
  return { ...joined, open };
}

runRateLimitSyncContract({
  driver: "cluster",
  fleet() {
    const f = fleet();
    return () => f.open().sync;
  },
});

describe("rate-limit exchange over IPC", () => {
  it("says it exchanges through the primary process", () => {
    expect(fleet().open().sync.via).toBe("the primary process");
  });

  it("rejects a push the primary does not answer in time, and one without a channel", async () => {
    const f = fleet();
    const w = f.open(50);
    expect((await w.sync.push([{ name: "k:a", units: 1 }], 1, 1, Date.now())).totals).toEqual([1, 1]);
    f.silence();
    await expect(w.sync.push([{ name: "k:a", units: 1 }], 1, 1, Date.now())).rejects.toThrow(/did not answer within 50 ms/);
    w.channel.connected = false;
    await expect(w.sync.push([], 1, 1, Date.now())).rejects.toThrow(/no IPC channel/);
  });

  it("stops counting a worker that exited as live at once", async () => {
    const f = fleet();
    const [a, b] = [f.open(), f.open()];
    const now = Date.now();
    await b.sync.push([], 1, 1, now);
    expect((await a.sync.push([], 1, 1, now)).replicas).toBe(2);
    b.exit();
    expect((await a.sync.push([], 1, 1, now)).replicas).toBe(1);
  });

  it("answers each worker its own pushes when they cross", async () => {
    const f = fleet();
    const [a, b] = [f.open(), f.open()];
    const now = Date.now();
    const [ta, tb] = await Promise.all([a.sync.push([{ name: "k:x", units: 2 }], 9, 9, now), b.sync.push([{ name: "k:y", units: 5 }, { name: "k:x", units: 1 }], 9, 9, now)]);
    expect(ta.totals).toHaveLength(2);
    expect(tb.totals).toHaveLength(4);
    expect(tb.totals.slice(0, 2)).toEqual([5, 5]);
    expect((await a.sync.push([{ name: "k:x", units: 0 }], 9, 9, now)).totals).toEqual([3, 3]);
  });
});

describe("the primary's counts", () => {
  it("forgets a credential an hour and a slot after its last push, so its memory stays bounded", () => {
    const counts = new FleetCounts(CONTRACT_SETTINGS);
    const t0 = Date.now();
    counts.push("1", [{ name: "k:old", units: 1 }], 1, 1, t0);
    counts.push("1", [{ name: "k:new", units: 1 }], 1, 1, t0 + CONTRACT_SETTINGS.hourTtlMs / 2);
    expect(counts.size).toBe(2);
    counts.push("1", [], 1, 1, t0 + CONTRACT_SETTINGS.hourTtlMs + 1);
    expect(counts.size).toBe(1);
    // Reading a credential with 0 units does not keep it (nor create one).
    counts.push("1", [{ name: "k:none", units: 0 }], 1, 1, t0 + CONTRACT_SETTINGS.hourTtlMs + 2);
    expect(counts.size).toBe(1);
  });

  it("keeps every credential's counts apart as its table grows and reuses what it forgot", () => {
    const counts = new FleetCounts(CONTRACT_SETTINGS);
    const t0 = Date.now();
    const names = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ({ name: `${tag}:${i}`, units: (i % 7) + 1 }));
    counts.push("1", names(3000, "a"), 50, 5, t0);
    const again = counts.push("1", names(3000, "a"), 51, 5, t0).totals;
    for (let i = 0; i < 3000; i += 499) expect([again[2 * i], again[2 * i + 1]]).toEqual([2 * ((i % 7) + 1), 2 * ((i % 7) + 1)]);
    const later = t0 + CONTRACT_SETTINGS.hourTtlMs + 1000;
    const fresh = counts.push("1", names(3000, "b"), 5000, 500, later).totals;
    expect(counts.size).toBe(3000);
    for (let i = 0; i < 3000; i += 499) expect([fresh[2 * i], fresh[2 * i + 1]]).toEqual([(i % 7) + 1, (i % 7) + 1]);
  });
});
