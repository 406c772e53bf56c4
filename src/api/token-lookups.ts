/**
 * Store lookups of the session secrets an unauthenticated caller presents, each under its client
 * address's budget of failures (authn/token-limiter.ts): a refresh token (AuthService.Refresh and
 * POST /oauth2/refresh), the session named at sign-out (AuthService.Logout and POST /oauth2/logout,
 * by refresh token or by an access token whose session must be read), and the state of a sign-in's
 * callback. An address past its budget is refused before any store work; a lookup that finds what
 * it looked for gives its attempt back, one the store could not answer too.
 */
import type { TokenLimiter } from "../authn/token-limiter.js";
import type { Metrics } from "../observability/metrics.js";
import { StoreError } from "../store/store.js";

/** What a lookup was for (the `use` label of verdict_token_attempts_total). */
export type TokenUse = "refresh" | "logout" | "sign_in_callback";

/** A lookup's result, or its refusal before any store work. */
export type Limited<T> = { readonly limited: false; readonly value: T } | { readonly limited: true; readonly retryAfterMs: number };

/**
 * Runs `lookup` for a secret presented from `address` (its client address's bucket) unless the
 * address is past its budget. `lookup` says whether the secret was `good` (its attempt is given
 * back); one that is not, or that throws anything but the store being unavailable, stays counted.
 */
export type TokenLookups = <T>(use: TokenUse, address: string, lookup: () => Promise<{ readonly good: boolean; readonly value: T }>) => Promise<Limited<T>>;

/** The refusal's message, for RPC errors and the cookie routes alike. */
export function tooManyTokenFailures(retryAfterMs: number): string {
  return `too many failed refresh tokens, sign-outs or sign-ins from this address; try again in ${retryAfterSeconds(retryAfterMs)} s`;
}

/** Whole seconds to wait, at least 1 (Retry-After). */
export function retryAfterSeconds(retryAfterMs: number): number {
  return Math.max(1, Math.ceil(retryAfterMs / 1000));
}

/** Creates the lookups over `limiter`, counting every outcome in verdict_token_attempts_total. */
export function createTokenLookups(options: { readonly limiter: TokenLimiter; readonly metrics: Metrics; readonly now?: () => number }): TokenLookups {
  const { limiter, metrics } = options;
  const now = options.now ?? Date.now;
  return async (use, address, lookup) => {
    const attempt = await limiter.reserve(address, now());
    if (!attempt.allowed) {
      metrics.tokenAttempts.labels(use, "rate_limited").inc();
      return { limited: true, retryAfterMs: attempt.retryAfterMs };
    }
    let result;
    try {
      result = await lookup();
    } catch (error) {
      if (error instanceof StoreError && error.code === "unavailable") await attempt.abandoned();
      else metrics.tokenAttempts.labels(use, "failure").inc();
      throw error;
    }
    if (result.good) await attempt.succeeded();
    metrics.tokenAttempts.labels(use, result.good ? "success" : "failure").inc();
    return { limited: false, value: result.value };
  };
}
