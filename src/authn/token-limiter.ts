/**
 * The limit on made-up session secrets: refresh tokens (Refresh, the refresh cookie, sign-out) and
 * sign-in states (the callback). Anyone can make up well-formed ones by the million, and only a
 * store lookup tells one apart from a real one (for Refresh, a transaction), so every lookup
 * reserves an attempt against its client address's budget of failures per window first. A secret
 * that turns out good gives its attempt back, so that a client refreshing all day never runs out.
 * As with logins (login-limiter.ts), reserving before the lookup means concurrent guesses cannot
 * all run before the first failure is counted.
 */
import { type RefusedAttempt, type ReservedAttempt, checkBudgets, createMemoryAttemptCounter } from "./attempt-counter.js";
import type { LoginLimiterOptions } from "./login-limiter.js";

/** Options of createTokenLimiter: the login limiter's per-address budget (failed lookups per address in one window). */
export type TokenLimiterOptions = Pick<LoginLimiterOptions, "maxFailuresPerAddress" | "windowMs" | "counter">;

/**
 * A reserved lookup: say how it ended (unsettled, it counts as a failure). `succeeded`: the secret
 * was good; `abandoned`: no secret was judged (the store failed). Either gives the attempt back.
 */
export type TokenAttempt = ReservedAttempt;

/** A lookup refused before any store work. */
export type TokenRefused = RefusedAttempt;

/** Reserves lookups of presented secrets. */
export interface TokenLimiter {
  /** Reserves a lookup for a secret presented from `address` (a client address's bucket). */
  reserve(address: string, nowMs: number): Promise<TokenAttempt | TokenRefused>;
}

/** Creates a limiter; throws on invalid options. */
export function createTokenLimiter(options: TokenLimiterOptions): TokenLimiter {
  const { maxFailuresPerAddress, windowMs } = options;
  checkBudgets({ maxFailuresPerAddress }, windowMs);
  const counter = options.counter ?? createMemoryAttemptCounter();
  return {
    async reserve(address, nowMs) {
      // Apart from the failed logins' keys ("address\0..."): a mistyped password costs no refresh, nor the reverse.
      const key = `token\u0000${address}`;
      const taken = await counter.take(key, maxFailuresPerAddress, windowMs, nowMs);
      if (!taken.counted) return { allowed: false, retryAfterMs: taken.resetAtMs - nowMs };
      const giveBack = () => counter.giveBack(key, nowMs);
      return { allowed: true, succeeded: giveBack, abandoned: giveBack };
    },
  };
}
