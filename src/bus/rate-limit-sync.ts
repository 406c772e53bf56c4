/**
 * The exchange of rate-limit counts between the replicas of a fleet (rate-limit-fleet.ts holds the
 * logic; this is its transport). Two drivers: Redis (rate-limit-sync-redis.ts), shared by every
 * replica and worker that has REDIS_URL, and, without Redis, the IPC channel of a process with
 * VERDICT_WORKERS > 1 (rate-limit-sync-cluster.ts), where the primary sums its workers' counts
 * (fleet-counts.ts). Both answer the same: the fleet's totals per credential and the live replicas.
 */
import { STANDARD_WINDOWS } from "../core/rate-limit.js";
import { SLOTS } from "../core/rate-window.js";

/** One credential's push: its fleet-wide name and the units this replica admitted since its last push. */
export interface FleetPush {
  readonly name: string;
  readonly units: number;
}

/**
 * The fleet's answer to one push: live replicas, and per credential (in push order) minute and hour
 * totals. Any of them may be a value that is no count (-1, NaN) when Redis held something else
 * than counts there: the caller checks each.
 */
export interface FleetTotals {
  readonly replicas: number;
  /** totals[2i] and totals[2i + 1]: units the whole fleet counts in credential i's minute and hour. */
  readonly totals: readonly number[];
}

/** Exchanges counts with the rest of the fleet. */
export interface RateLimitSync {
  /** What the counts are exchanged through, for logs ("Redis", "the primary process"). */
  readonly via: string;
  /**
   * Adds each push's units at `minuteSlot` / `hourSlot` and answers the totals of the windows
   * ending there (`ring` slots each). Rejects when the other side cannot be reached in time.
   */
  push(pushes: readonly FleetPush[], minuteSlot: number, hourSlot: number, nowMs: number): Promise<FleetTotals>;
  close(): Promise<void>;
}

/** How the fleet keeps counts: window slots, how long they live, who counts as live, how long a push may take. */
export interface FleetSyncSettings {
  /** Slots per window including the current one (SLOTS + 1). */
  readonly ring: number;
  /** How long a credential's minute and hour counts are kept after its last push (their window plus a slot). */
  readonly minuteTtlMs: number;
  readonly hourTtlMs: number;
  /** A replica that has not pushed for this long no longer counts as live. */
  readonly liveMs: number;
  /** Longest wait for one push. */
  readonly timeoutMs: number;
}

/** The settings of an exchange every `intervalMs` (VERDICT_RATE_LIMIT_SYNC_MS), whichever the driver. */
export function fleetSyncSettings(intervalMs: number): FleetSyncSettings {
  return {
    ring: SLOTS + 1,
    minuteTtlMs: STANDARD_WINDOWS.minute.periodMs + 2 * STANDARD_WINDOWS.minute.slotMs,
    hourTtlMs: STANDARD_WINDOWS.hour.periodMs + 2 * STANDARD_WINDOWS.hour.slotMs,
    liveMs: Math.max(2000, 20 * intervalMs),
    timeoutMs: Math.max(500, 10 * intervalMs),
  };
}
