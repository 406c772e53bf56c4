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
 */
import type { AttemptCount, AttemptCounter, ClosableAttemptCounter } from "../authn/attempt-counter.js";
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
}


// KEYS[1]: the key's counter. ARGV: limit, window ms. Returns {counted (0/1), ms left in the window}.
const TAKE = `
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl = redis.call('PTTL', KEYS[1])
if count >= tonumber(ARGV[1]) then return { 0, ttl } end
count = redis.call('INCR', KEYS[1])
if count == 1 or ttl < 0 then
  ttl = tonumber(ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return { 1, ttl }
`;

// KEYS[1]: the key's counter. Uncounts one attempt, keeping the window's expiry.
const GIVE_BACK = `
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
return 0
`;

const FAIL_CLOSED_RETRY_MS = 1000;

/** Creates the counter; connects at once and reconnects by itself. */
export function createRedisAttemptCounter(options: RedisAttemptCounterOptions): ClosableAttemptCounter {
  const { redis, firstAttempt } = createRedisScriptConnection(options.url, "verdict:login-attempts", options.timeoutMs);
  redis.defineCommand("verdictAttemptTake", { numberOfKeys: 1, lua: TAKE });
  redis.defineCommand("verdictAttemptGiveBack", { numberOfKeys: 1, lua: GIVE_BACK });
  const commands = redis as unknown as {
    verdictAttemptTake(key: string, limit: number, windowMs: number): Promise<[number, number]>;
    verdictAttemptGiveBack(key: string): Promise<number>;
  };
  const name = (key: string) => `${options.prefix}:login:${key}`;
  const failed = (error: unknown) => options.onFailure?.(error);

  return {
    async take(key, limit, windowMs, nowMs): Promise<AttemptCount> {
      await firstAttempt;
      try {
        const [counted, ttl] = await commands.verdictAttemptTake(name(key), limit, windowMs);
        return { counted: counted === 1, resetAtMs: nowMs + Math.max(0, ttl) };
      } catch (error) {
        failed(error);
        if (options.fallback) return options.fallback.take(key, limit, windowMs, nowMs);
        return { counted: false, resetAtMs: nowMs + FAIL_CLOSED_RETRY_MS };
      }
    },
    async giveBack(key, nowMs) {
      try {
        await commands.verdictAttemptGiveBack(name(key));
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
