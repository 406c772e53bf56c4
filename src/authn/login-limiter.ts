/**
 * The limit on password guessing. Two budgets of failed attempts per window: one per username and
 * client address (whatever the transport: gRPC, Connect JSON, Basic credentials on admin calls),
 * and one per client address whatever the usernames, known or not. An attempt is reserved against
 * both before any password work, so concurrent guesses cannot all run before the first failure is
 * counted; a success gives the attempt back and clears its username's budget.
 */
import { type AttemptCounter, type RefusedAttempt, type ReservedAttempt, checkBudgets, createMemoryAttemptCounter } from "./attempt-counter.js";

/** Options of createLoginLimiter. */
export interface LoginLimiterOptions {
  /** Failed attempts allowed per username and address in one window. */
  readonly maxFailures: number;
  /** Failed attempts allowed per address in one window, whatever the usernames. */
  readonly maxFailuresPerAddress: number;
  readonly windowMs: number;
  /** Where attempts are counted (default: in memory, on this replica). */
  readonly counter?: AttemptCounter;
}

/**
 * A reserved attempt: say how it ended. `succeeded`: the password was right (the attempt is given
 * back and the username's budget cleared); `abandoned`: no password was judged (the store or the
 * argon2 queue failed).
 */
export type LoginAttempt = ReservedAttempt;

/** An attempt refused before any password work. */
export type LoginRefused = RefusedAttempt;

/** Reserves login attempts. */
export interface LoginLimiter {
  /** Reserves an attempt of `username` from `address`; it counts as a failure unless settled otherwise. */
  reserve(username: string, address: string, nowMs: number): Promise<LoginAttempt | LoginRefused>;
}

/** Creates a limiter; throws on invalid options. */
export function createLoginLimiter(options: LoginLimiterOptions): LoginLimiter {
  const { maxFailures, maxFailuresPerAddress, windowMs } = options;
  checkBudgets({ maxFailures, maxFailuresPerAddress }, windowMs);
  const counter = options.counter ?? createMemoryAttemptCounter();
  return {
    async reserve(username, address, nowMs) {
      // Usernames are unique ignoring case, so every spelling of one shares its budget.
      const pairKey = `user\u0000${username.toLowerCase()}\u0000${address}`;
      const addressKey = `address\u0000${address}`;
      // The address first: an address past its budget creates no per-username counts, so cycling
      // usernames cannot push other counts (its own address's, or victims') out of a bounded counter.
      const perAddress = await counter.take(addressKey, maxFailuresPerAddress, windowMs, nowMs);
      if (!perAddress.counted) return { allowed: false, retryAfterMs: perAddress.resetAtMs - nowMs };
      const pair = await counter.take(pairKey, maxFailures, windowMs, nowMs);
      if (!pair.counted) {
        await counter.giveBack(addressKey, nowMs);
        return { allowed: false, retryAfterMs: pair.resetAtMs - nowMs };
      }
      return {
        allowed: true,
        async succeeded() {
          await counter.clear(pairKey);
          await counter.giveBack(addressKey, nowMs);
        },
        async abandoned() {
          await counter.giveBack(pairKey, nowMs);
          await counter.giveBack(addressKey, nowMs);
        },
      };
    },
  };
}
