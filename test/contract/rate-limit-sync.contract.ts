/**
 * One behaviour suite for every driver of the exchange of rate-limit counts (Redis, and the IPC
 * channel to the primary of VERDICT_WORKERS): each driver's test file calls
 * `runRateLimitSyncContract` with a harness that opens replicas of fresh fleets.
 */
import { describe, expect, it } from "vitest";
import type { RateLimitSync } from "../../src/bus/rate-limit-sync.js";

/** The settings every harness gives its driver. */
export const CONTRACT_SETTINGS = { ring: 21, minuteTtlMs: 70_000, hourTtlMs: 4_000_000, liveMs: 2000, timeoutMs: 500 } as const;

/** Opens fleets for the suite. */
export interface RateLimitSyncHarness {
  /** "redis" or "cluster". */
  readonly driver: string;
  /** A fresh fleet (nothing counted, no replica live): a function opening its replica `replicaId` (the harness closes them). */
  fleet(): (replicaId: string) => RateLimitSync;
}

export function runRateLimitSyncContract(harness: RateLimitSyncHarness): void {
  describe(`rate-limit exchange contract (${harness.driver})`, () => {
    const fleet = () => harness.fleet();

    it("adds each replica's units and answers the fleet's totals in both windows", async () => {
      const replica = fleet();
      const a = replica("a");
      const b = replica("b");
      const now = Date.now();
      expect(await a.push([{ name: "k:one", units: 3 }, { name: "k:two", units: 1 }], 1000, 50, now)).toEqual({ replicas: 1, totals: [3, 3, 1, 1] });
      expect(await b.push([{ name: "k:one", units: 4 }], 1001, 50, now)).toEqual({ replicas: 2, totals: [7, 7] });
      // Asking with 0 units reads without adding; an unknown credential has nothing.
      expect(await a.push([{ name: "k:one", units: 0 }, { name: "k:none", units: 0 }], 1001, 50, now)).toEqual({ replicas: 2, totals: [7, 7, 0, 0] });
    });

    it("drops slots that left the window: a unit counts in its slot and the 20 after it", async () => {
      const a = fleet()("a");
      const now = Date.now();
      await a.push([{ name: "u:x", units: 5 }], 100, 7, now);
      await a.push([{ name: "u:x", units: 2 }], 110, 7, now);
      expect((await a.push([{ name: "u:x", units: 0 }], 120, 7, now)).totals).toEqual([7, 7]);
      expect((await a.push([{ name: "u:x", units: 0 }], 121, 7, now)).totals).toEqual([2, 7]);
      expect((await a.push([{ name: "u:x", units: 0 }], 131, 28, now)).totals).toEqual([0, 0]);
      // A slot that comes round again in the ring starts from nothing.
      expect((await a.push([{ name: "u:x", units: 1 }], 142, 28, now)).totals).toEqual([1, 1]);
    });

    it("forgets replicas that stopped pushing", async () => {
      const replica = fleet();
      const a = replica("a");
      const b = replica("b");
      const now = Date.now();
      await b.push([], 1, 1, now - 5000);
      expect((await a.push([], 1, 1, now)).replicas).toBe(1);
      await b.push([], 1, 1, now);
      expect((await a.push([], 1, 1, now)).replicas).toBe(2);
    });

    // More than one Redis script call's batch.
    it("answers many credentials in one push, in order", async () => {
      const a = fleet()("a");
      const pushes = Array.from({ length: 450 }, (_, i) => ({ name: `k:${i}`, units: i }));
      const { totals } = await a.push(pushes, 5, 5, Date.now());
      expect(totals).toHaveLength(900);
      expect(totals[2 * 449]).toBe(449);
      expect(totals[2 * 449 + 1]).toBe(449);
    });
  });
}
