/**
 * Login attempts counted in Redis, so that N replicas allow the guesses of one, not N times them.
 * Unlike Check's rate limits (counted in memory, shared in the background), every login attempt
 * asks Redis once: logins already cost a store lookup and an argon2 verification, and a tight
 * budget (5 in 5 minutes) leaves no room for the overshoot of background sharing. Each take is one
 * atomic script: count the attempt unless the key's window is full, start the window's expiry at
 * its first attempt.
 *
 * Redis unreachable: fail open counts on this replica (the fallback counter; up to N times the
 * guesses while it lasts), fail closed refuses every attempt for a second at a time.
 *
 * A key holding anything but a count this script wrote (`inf`, `nan`, `1e3`, text, a negative
 * number, another type) would have refused that username for ever or failed every attempt: it is
 * reset instead, the attempt counted as the first of a new window, and reported. A count found
 * without an expiry gets the window's.
 */
import { type AttemptCount, type AttemptCounter, type ClosableAttemptCounter, takeWhileUnreachable } from "../authn/attempt-counter.js";
import type { Logger } from "../observability/logger.js";
import { createRedisScriptConnection } from "./redis-script-connection.js";

/** Options of createRedisAttemptCounter. */
export interface RedisAttemptCounterOptions {
  readonly url: string;
  /** Prefix of every key (one deployment's replicas share it). */
  readonly prefix: string;
  /** Longest wait for Redis per call. */
  readonly timeoutMs: number;
  /** Where to count while Redis cannot be reached; undefined: refuse attempts (fail closed). */
  readonly fallback: AttemptCounter | undefined;
  /** Called on every call Redis did not answer. */
  readonly onFailure?: (error: unknown) => void;
  /** Called with the Redis key for every counter found holding no count (and reset). */
  readonly onBadValue?: (key: string) => void;
  /** Warned at most once a minute, with how many such counters were reset since. */
  readonly logger?: Logger;
}


// The count in KEYS[1]: 0 when there is none; nil (after deleting the key) when it holds anything
// but decimal digits this script could have written (tonumber would read inf, nan, 1e3, 0x10).
const READ_COUNT = `
local function current(key)
  local kind = redis.call('TYPE', key).ok
  if kind == 'none' then return 0 end
  if kind == 'string' then
    local v = redis.call('GET', key)
    if #v > 0 and #v <= 15 and string.find(v, '^%d+$') then return tonumber(v) end
  end
  redis.call('DEL', key)
  return nil
end
`;

// KEYS[1]: the key's counter. ARGV: limit, window ms.
// Returns {counted (0/1), ms left in the window, 1 if the key held no count and was reset}.
const TAKE = `${READ_COUNT}
local count = current(KEYS[1])
local bad = 0
if count == nil then count, bad = 0, 1 end
local ttl = redis.call('PTTL', KEYS[1])
if count >= tonumber(ARGV[1]) then
  if ttl < 0 then
    ttl = tonumber(ARGV[2])
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
  return { 0, ttl, bad }
end
count = redis.call('INCR', KEYS[1])
if count == 1 or ttl < 0 then
  ttl = tonumber(ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return { 1, ttl, bad }
`;

// KEYS[1]: the key's counter. Uncounts one attempt, keeping the window's expiry. Returns 1 if the
// key held no count and was reset.
const GIVE_BACK = `${READ_COUNT}
local count = current(KEYS[1])
if count == nil then return 1 end
if count > 0 then redis.call('DECR', KEYS[1]) end
return 0
`;

const BAD_VALUE_LOG_MS = 60_000;


/** Creates the counter; connects at once and reconnects by itself. */
export function createRedisAttemptCounter(options: RedisAttemptCounterOptions): ClosableAttemptCounter {
  const { redis, firstAttempt } = createRedisScriptConnection(options.url, "verdict:login-attempts", options.timeoutMs);
  redis.defineCommand("verdictAttemptTake", { numberOfKeys: 1, lua: TAKE });
  redis.defineCommand("verdictAttemptGiveBack", { numberOfKeys: 1, lua: GIVE_BACK });
  const commands = redis as unknown as {
    verdictAttemptTake(key: string, limit: number, windowMs: number): Promise<[number, number, number]>;
    verdictAttemptGiveBack(key: string): Promise<number>;
  };
  const name = (key: string) => `${options.prefix}:login:${key}`;
  const failed = (error: unknown) => options.onFailure?.(error);
  let resetUnlogged = 0;
  let lastResetLog = -Infinity;
  const reset = (key: string) => {
    options.onBadValue?.(key);
    resetUnlogged++;
    const now = Date.now();
    if (now - lastResetLog < BAD_VALUE_LOG_MS) return;
    options.logger?.warn("attempt counters in Redis (failed logins, sign-in starts) held no count (another type, or not a whole number); reset them, counting from the attempt that found them", {
      reset: resetUnlogged,
      prefix: `${options.prefix}:login:`,
    });
    lastResetLog = now;
    resetUnlogged = 0;
  };

  return {
    async take(key, limit, windowMs, nowMs): Promise<AttemptCount> {
      await firstAttempt;
      try {
        const [counted, ttl, bad] = await commands.verdictAttemptTake(name(key), limit, windowMs);
        if (bad === 1) reset(name(key));
        return { counted: counted === 1, resetAtMs: nowMs + Math.max(0, ttl) };
      } catch (error) {
        failed(error);
        return takeWhileUnreachable(options.fallback, key, limit, windowMs, nowMs);
      }
    },
    async giveBack(key, nowMs) {
      try {
        if ((await commands.verdictAttemptGiveBack(name(key))) === 1) reset(name(key));
      } catch (error) {
        failed(error);
      }
      await options.fallback?.giveBack(key, nowMs);
    },
    async clear(key) {
      try {
        await redis.del(name(key));
      } catch (error) {
        failed(error);
      }
      await options.fallback?.clear(key);
    },
    async close() {
      redis.disconnect();
    },
  };
}
