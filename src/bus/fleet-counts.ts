/**
 * The fleet's rate-limit counts kept in one process's memory: what the Redis script of
 * rate-limit-sync-redis.ts does, for the primary of VERDICT_WORKERS > 1 without Redis. Each
 * credential has a minute and an hour window of `ring` slots (slot -> units); a push adds its
 * units at the given slots, slots that left the windows stop counting, and the answer is the
 * totals of the windows ending at those slots and the number of replicas (workers) that pushed
 * within `liveMs`. A credential is forgotten `hourTtlMs` after its last push with units, as the
 * Redis hashes expire.
 */
import type { FleetPush, FleetSyncSettings, FleetTotals } from "./rate-limit-sync.js";

/** The settings FleetCounts uses (a push's timeout is the caller's). */
export type FleetCountsSettings = Pick<FleetSyncSettings, "ring" | "hourTtlMs" | "liveMs">;

/** How often (at most) the credentials whose counts all expired are dropped. */
const FORGET_EVERY_MS = 60_000;

/**
 * Every credential's counts and the live replicas, in memory. A credential's counts are 4 x ring + 1
 * words of one growing Uint32Array (no object per credential): minute slot numbers, minute units,
 * hour slot numbers, hour units (each indexed by slot % ring), then its last push with units in
 * whole seconds.
 */
export class FleetCounts {
  private words: Uint32Array;
  private readonly stride: number;
  private readonly index = new Map<string, number>();
  private readonly free: number[] = [];
  private used = 0;
  private readonly replicas = new Map<string, number>();
  private forgottenAt = 0;

  constructor(private readonly settings: FleetCountsSettings) {
    this.stride = 4 * settings.ring + 1;
    this.words = new Uint32Array(1024 * this.stride);
  }

  /** Credentials counted now. */
  get size(): number {
    return this.index.size;
  }

  /**
   * Adds the pushes of replica `replicaId` at `minuteSlot` / `hourSlot` and answers the live
   * replicas and, per push in order, the fleet's minute and hour totals.
   */
  push(replicaId: string, pushes: readonly FleetPush[], minuteSlot: number, hourSlot: number, nowMs: number): FleetTotals {
    const { ring, liveMs } = this.settings;
    this.replicas.set(replicaId, nowMs);
    for (const [id, at] of this.replicas) if (at <= nowMs - liveMs) this.replicas.delete(id);
    if (nowMs - this.forgottenAt >= FORGET_EVERY_MS) {
      this.forgottenAt = nowMs;
      this.forgetExpired(nowMs);
    }
    const totals: number[] = [];
    for (const { name, units } of pushes) {
      let at = this.index.get(name);
      if (at === undefined && units > 0) at = this.add(name);
      if (at === undefined) {
        totals.push(0, 0);
        continue;
      }
      if (units > 0) this.words[at + 4 * ring] = Math.floor(nowMs / 1000);
      totals.push(window(this.words, at, ring, minuteSlot, units), window(this.words, at + 2 * ring, ring, hourSlot, units));
    }
    return { replicas: Math.max(1, this.replicas.size), totals };
  }

  /** Stops counting replica `replicaId` as live (it exited). */
  forget(replicaId: string): void {
    this.replicas.delete(replicaId);
  }

  private add(name: string): number {
    let at = this.free.pop();
    if (at === undefined) {
      at = this.used;
      this.used += this.stride;
      if (this.used > this.words.length) {
        const grown = new Uint32Array(this.words.length * 2);
        grown.set(this.words);
        this.words = grown;
      }
    }
    this.words.fill(0, at, at + this.stride);
    this.index.set(name, at);
    return at;
  }

  private forgetExpired(nowMs: number): void {
    const last = 4 * this.settings.ring;
    const expired = (nowMs - this.settings.hourTtlMs) / 1000;
    for (const [name, at] of this.index) {
      if (this.words[at + last] > expired) continue;
      this.index.delete(name);
      this.free.push(at);
    }
  }
}

/** Adds `units` at `slot` to the window at `base` and answers its total over the `ring` slots ending at `slot`. */
function window(words: Uint32Array, base: number, ring: number, slot: number, units: number): number {
  if (units > 0) {
    const i = slot % ring;
    if (words[base + i] !== slot) {
      words[base + i] = slot;
      words[base + ring + i] = 0;
    }
    words[base + ring + i] += units;
  }
  let total = 0;
  for (let i = 0; i < ring; i++) {
    const s = words[base + i];
    if (s > slot - ring && s <= slot) total += words[base + ring + i];
  }
  return total;
}
