/**
 * Fleet-wide rate-limit counts in Redis. Each replica counts in memory and, every few ms, sends
 * Redis what it admitted since its last push, for the credentials it saw, in one atomic script
 * per batch; the script adds the units to the current slot of each credential's minute and hour
 * windows (Redis hashes of slot -> units, the same 20 + 1 slots the replicas count in), drops the
 * slots that left the windows, and answers the fleet's totals and the number of live replicas.
 * Nothing here runs on the Check path.
 *
 * Keys: `<prefix>:replicas` (a sorted set of replica ids by last push) and, per credential,
 * `<prefix>:<name>:m` / `:h`. Every key of one push goes to one script call, so all keys must live
 * on one Redis (not a cluster).
 */
import { createRedisScriptConnection } from "./redis-script-connection.js";

/** One credential's push: its Redis name and the units this replica admitted since its last push. */
export interface FleetPush {
  readonly name: string;
  readonly units: number;
}

/** The fleet's answer to one push: live replicas, and per credential (in push order) minute and hour totals. */
export interface FleetTotals {
  readonly replicas: number;
  /** totals[2i] and totals[2i + 1]: units the whole fleet counts in credential i's minute and hour. */
  readonly totals: readonly number[];
}

/** Exchanges counts with the rest of the fleet. */
export interface RateLimitSync {
  /**
   * Adds each push's units at `minuteSlot` / `hourSlot` and answers the totals of the windows
   * ending there (`ring` slots each). Rejects when Redis cannot be reached in time.
   */
  push(pushes: readonly FleetPush[], minuteSlot: number, hourSlot: number, nowMs: number): Promise<FleetTotals>;
  close(): Promise<void>;
}

/** Options of createRedisRateLimitSync. */
export interface RedisRateLimitSyncOptions {
  readonly url: string;
  /** Prefix of every key (one deployment's replicas share it). */
  readonly prefix: string;
  /** This replica's id among the live replicas. */
  readonly replicaId: string;
  /** Slots per window including the current one (SLOTS + 1). */
  readonly ring: number;
  /** How long the minute and hour hashes live after the last push (their window plus a slot). */
  readonly minuteTtlMs: number;
  readonly hourTtlMs: number;
  /** A replica that has not pushed for this long no longer counts as live. */
  readonly liveMs: number;
  /** Longest wait for one push. */
  readonly timeoutMs: number;
}

// KEYS[1]: replicas; KEYS[2i], KEYS[2i+1]: credential i's minute and hour hashes.
// ARGV: minute slot, hour slot, ring, minute ttl, hour ttl, replica id, now, live ms, units per credential...
const SCRIPT = `
local mslot, hslot, ring = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local mttl, httl, now, live = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[7]), tonumber(ARGV[8])
redis.call('ZADD', KEYS[1], now, ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - live)
redis.call('PEXPIRE', KEYS[1], live * 2)
local out = { redis.call('ZCARD', KEYS[1]) }
local function window(key, slot, ttl, units)
  if units > 0 then
    redis.call('HINCRBY', key, slot, units)
    redis.call('PEXPIRE', key, ttl)
  end
  local fields = redis.call('HGETALL', key)
  local total = 0
  for j = 1, #fields, 2 do
    if tonumber(fields[j]) <= slot - ring then
      redis.call('HDEL', key, fields[j])
    else
      total = total + tonumber(fields[j + 1])
    end
  end
  return total
end
for i = 1, #KEYS / 2 do
  local units = tonumber(ARGV[8 + i])
  out[#out + 1] = window(KEYS[2 * i], mslot, mttl, units)
  out[#out + 1] = window(KEYS[2 * i + 1], hslot, httl, units)
end
return out
`;

const BATCH = 200;

/** Creates the Redis exchange; connects at once and reconnects by itself (never throws after creation). */
export function createRedisRateLimitSync(options: RedisRateLimitSyncOptions): RateLimitSync {
  // Pushes made while the first connection is being made wait for it (bounded); later outages fail fast.
  const { redis, firstAttempt } = createRedisScriptConnection(options.url, "verdict:rate-limits", options.timeoutMs);
  redis.defineCommand("verdictRateLimitPush", { lua: SCRIPT });
  const replicas = `${options.prefix}:replicas`;
  const run = redis as unknown as { verdictRateLimitPush(...args: (string | number)[]): Promise<number[]> };

  return {
    async push(pushes, minuteSlot, hourSlot, nowMs) {
      await firstAttempt;
      let live = 1;
      const totals: number[] = [];
      const calls: Array<Promise<number[]>> = [];
      const batches: Array<readonly FleetPush[]> = [];
      for (let start = 0; start < pushes.length; start += BATCH) batches.push(pushes.slice(start, start + BATCH));
      // With nothing to push, still say this replica is alive and learn how many are.
      if (batches.length === 0) batches.push([]);
      for (const batch of batches) {
        const keys = [replicas];
        for (const p of batch) keys.push(`${options.prefix}:${p.name}:m`, `${options.prefix}:${p.name}:h`);
        const args = [minuteSlot, hourSlot, options.ring, options.minuteTtlMs, options.hourTtlMs, options.replicaId, nowMs, options.liveMs];
        calls.push(run.verdictRateLimitPush(keys.length, ...keys, ...args, ...batch.map((p) => p.units)));
      }
      for (const out of await Promise.all(calls)) {
        live = Math.max(live, Number(out[0]));
        for (let i = 1; i < out.length; i++) totals.push(Number(out[i]));
      }
      return { replicas: live, totals };
    },
    async close() {
      redis.disconnect();
    },
  };
}
