/**
 * The one password check behind Login and behind Basic credentials on admin calls: the attempt is
 * reserved with the login limiter (per username and client address, and per address) before the
 * store lookup and the argon2 work, and the argon2 slot is shared out in turn between addresses.
 * An address here is the client's bucket (an IPv6 client's /64: client-address.ts).
 */
import type { LoginLimiter } from "../authn/login-limiter.js";
import type { PasswordHasher } from "../authn/password.js";
import type { UserRecord } from "../core/model.js";
import type { Store } from "../store/store.js";
import { ApiError } from "./errors.js";
import type { CallContext } from "./rpc.js";

/** How a password check ended. */
export type PasswordCheckResult =
  | { readonly kind: "ok"; readonly user: UserRecord }
  | { readonly kind: "wrong" }
  | { readonly kind: "limited"; readonly retryAfterMs: number };

/** Checks `password` for `username` on behalf of the caller of `ctx`. */
export type PasswordCheck = (ctx: CallContext, username: string, password: string) => Promise<PasswordCheckResult>;

/** What createPasswordCheck needs. */
export interface PasswordCheckOptions {
  readonly store: Store;
  readonly passwords: PasswordHasher;
  readonly limiter: LoginLimiter;
  /** What the limits and the argon2 turns count a call as: its client address's bucket (createClientBucket). */
  readonly clientBucket: (ctx: CallContext) => string;
  readonly now?: () => number;
}

/** The error for an attempt the limiter refused. */
export function tooManyFailures(retryAfterMs: number): ApiError {
  return new ApiError("resource_exhausted", `too many failed logins; try again in ${Math.max(1, Math.ceil(retryAfterMs / 1000))} s`);
}

/**
 * Creates the check. "ok" only for an enabled local user whose password matches; an unknown user,
 * an external user (no password) and a wrong password cost the same argon2 work and answer "wrong".
 */
export function createPasswordCheck(options: PasswordCheckOptions): PasswordCheck {
  const { store, passwords, limiter, clientBucket } = options;
  const now = options.now ?? Date.now;
  return async (ctx, username, password) => {
    const address = clientBucket(ctx);
    const attempt = await limiter.reserve(username, address, now());
    if (!attempt.allowed) return { kind: "limited", retryAfterMs: attempt.retryAfterMs };
    let user: UserRecord | undefined;
    try {
      const creds = await store.getUserCredentials(username);
      const local = creds && creds.user.externalIssuer === "" ? creds : undefined;
      const ok = await passwords.verify(local?.passwordHash, password, address);
      user = ok && local && !local.user.disabled ? local.user : undefined;
    } catch (error) {
      await attempt.abandoned();
      throw error;
    }
    if (!user) return { kind: "wrong" };
    await attempt.succeeded();
    return { kind: "ok", user };
  };
}
