/**
 * Fleet-wide rate-limit counts in Redis. Each replica (each worker of one, with VERDICT_WORKERS)
 * counts in memory and, every few ms, sends Redis what it admitted since its last push, for the
 * credentials it saw, in one atomic script per batch; the script adds the units to the current
 * slot of each credential's minute and hour windows (Redis hashes of slot -> units, the same 20 + 1 slots the replicas count in), drops the
 * slots that left the windows, and answers the fleet's totals and the number of live replicas.
 * Nothing here runs on the Check path.
 *
 * Keys: `<prefix>:replicas` (a sorted set of replica ids by last push) and, per credential,
 * `<prefix>:<name>:m` / `:h`. Every key of one push goes to one script call, so all keys must live
 * on one Redis (not a cluster).
 */
import type { FleetPush, FleetSyncSettings, RateLimitSync } from "./rate-limit-sync.js";
import { createRedisScriptConnection } from "./redis-script-connection.js";

/** Options of createRedisRateLimitSync (the TTLs are those of the minute and hour hashes). */
export interface RedisRateLimitSyncOptions extends FleetSyncSettings {
  readonly url: string;
  /** Prefix of every key (one deployment's replicas share it). */
  readonly prefix: string;
  /** This replica's id among the live replicas. */
  readonly replicaId: string;
}

// KEYS[1]: replicas; KEYS[2i], KEYS[2i+1]: credential i's minute and hour hashes.
// ARGV: minute slot, hour slot, ring, minute ttl, hour ttl, replica id, now, live ms, units per credential...
// A key of another type, or a hash holding anything but slot -> count in the window, answers -1
// for it (and is left as it is) instead of failing the whole call or summing garbage.
const SCRIPT = `
local mslot, hslot, ring = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local mttl, httl, now, live = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[7]), tonumber(ARGV[8])
local function count(text)
  if type(text) ~= 'string' or #text > 10 or not string.match(text, '^%d+$') then return nil end
  local n = tonumber(text)
  if n > 4294967295 then return nil end
  return n
end
local function kind(key)
  return redis.call('TYPE', key)['ok']
end
local out
local rkind = kind(KEYS[1])
if rkind == 'zset' or rkind == 'none' then
  redis.call('ZADD', KEYS[1], now, ARGV[6])
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - live)
  redis.call('PEXPIRE', KEYS[1], live * 2)
  out = { redis.call('ZCARD', KEYS[1]) }
else
  out = { -1 }
end
local function window(key, slot, ttl, units)
  local k = kind(key)
  if k ~= 'hash' and k ~= 'none' then return -1 end
  if units > 0 then
    local current = redis.call('HGET', key, slot)
    if current and not count(current) then return -1 end
    redis.call('HINCRBY', key, slot, units)
    redis.call('PEXPIRE', key, ttl)
  end
  local fields = redis.call('HGETALL', key)
  local total, bad = 0, false
  for j = 1, #fields, 2 do
    local s, n = count(fields[j]), count(fields[j + 1])
    if not s then
      bad = true
    elseif s <= slot - ring then
      redis.call('HDEL', key, fields[j])
    elseif not n then
      bad = true
    else
      total = total + n
    end
  end
  if bad then return -1 end
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
    via: "Redis",
    async push(pushes, minuteSlot, hourSlot, nowMs) {
      await firstAttempt;
      let live = Number.NaN;
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
      (await Promise.all(calls)).forEach((out: unknown, b) => {
        const expected = 1 + 2 * batches[b].length;
        // An answer of another shape leaves this batch's totals unknown (NaN), still one per key.
        const answer = Array.isArray(out) && out.length === expected ? out.map((v: unknown) => (typeof v === "number" ? v : Number.NaN)) : new Array<number>(expected).fill(Number.NaN);
        if (Number.isNaN(live) || answer[0] > live) live = answer[0];
        totals.push(...answer.slice(1));
      });
      return { replicas: live, totals };
    },
    async close() {
      redis.disconnect();
    },
  };
}
