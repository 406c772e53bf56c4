/**
 * The records every storage capability shares: who performed a write, what it committed, and the
 * login sessions with their refresh tokens (opened by password login and by identity sign-in
 * alike). store.ts and identity-store.ts both import them from here.
 */

/** Who performed a mutation, recorded in the change log for audit. */
export interface Actor {
  /** User id, or "system" for bootstrap. */
  readonly userId: string;
  /** API key id if the actor used a key. */
  readonly keyId?: string;
}

/** The result of a mutation: the version it committed at. */
export interface Committed<T = undefined> {
  readonly version: number;
  readonly value: T;
}

/** A login session: one refresh-token family. Times are ms since the epoch; 0 means not set. */
export interface SessionRecord {
  readonly id: string;
  readonly userId: string;
  /** The tenant its tokens are scoped to; "" when unscoped. */
  readonly tenant: string;
  readonly createdAtMs: number;
  /** When its newest refresh token expires. */
  readonly expiresAtMs: number;
  readonly revokedAtMs: number;
  /** Why it was revoked ("logout", "refresh_reuse", ...); "" while active. */
  readonly revokeReason: string;
}

/** A refresh token as stored: only its SHA-256 hash. */
export interface RefreshTokenRecord {
  readonly hash: string;
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
}
