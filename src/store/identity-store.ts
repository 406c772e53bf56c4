/**
 * What sign-in through identity providers keeps in the database: the external identities linked
 * to users, the sessions opened through them, and the pending authorizations (state, nonce, PKCE
 * verifier) between the redirect to a provider and its callback, so that any replica can finish
 * a flow another one started.
 */
import type { BindingRecord, UserRecord } from "../core/model.js";
import type { Actor, Committed, RefreshTokenRecord, SessionRecord } from "./records.js";

/** An external identity (provider id, subject at that provider) linked to a Verdict user. */
export interface LinkedIdentityRecord {
  readonly provider: string;
  readonly subject: string;
  readonly userId: string;
  /** The email the provider reported when the link was made ("" if none). */
  readonly email: string;
  readonly createdAtMs: number;
}

/**
 * A started authorization, found again by the hash of its state. The verifier and nonce are kept
 * only until the callback takes the row (once) or it expires.
 */
export interface PendingAuthorization {
  /** Hex SHA-256 of the state sent to the provider. */
  readonly stateHash: string;
  readonly provider: string;
  readonly nonce: string;
  readonly codeVerifier: string;
  /** Where the browser goes afterwards; "" answers the callback with JSON tokens. */
  readonly returnTo: string;
  /** When linking an identity to a signed-in user: that user's id; "" for a sign-in. */
  readonly linkUserId: string;
  readonly expiresAtMs: number;
}

/** A session opened through an external identity, with what must be created along with it. */
export interface IdentitySessionInput {
  readonly session: SessionRecord;
  readonly refresh: RefreshTokenRecord;
  readonly provider: string;
  readonly subject: string;
  /** A link to create in the same transaction (first sign-in, explicit link, verified email). */
  readonly link?: LinkedIdentityRecord;
  /** A user to provision in the same transaction (with its bindings). */
  readonly newUser?: { readonly user: UserRecord; readonly bindings: readonly BindingRecord[] };
}

/** Linked identities, their sessions and pending authorizations. */
export interface IdentityStore {
  /**
   * Stores a started authorization and deletes the expired ones; when more than `maxRows` would
   * then be kept, deletes the ones closest to expiry (the oldest started) to make room. Returns how
   * many unexpired authorizations were deleted so. Concurrent saves may overshoot `maxRows` by their
   * number, never more.
   */
  savePendingAuthorization(pending: PendingAuthorization, nowMs: number, maxRows: number): Promise<number>;
  /**
   * Deletes and returns the authorization with this state hash (single use: a second call for
   * the same state finds nothing). Returns undefined when it is unknown, used or expired.
   */
  takePendingAuthorization(stateHash: string, nowMs: number): Promise<PendingAuthorization | undefined>;
  getLinkedIdentity(provider: string, subject: string): Promise<LinkedIdentityRecord | undefined>;
  /** The identities linked to a user, by provider then subject. */
  listLinkedIdentities(userId: string): Promise<LinkedIdentityRecord[]>;
  /**
   * In one transaction: creates `newUser` and `link` when given, then opens the session and
   * records that it came through (provider, subject). already_exists when the link or username
   * is taken (a concurrent first sign-in: look the link up again).
   */
  openIdentitySession(input: IdentitySessionInput, actor: Actor): Promise<Committed<SessionRecord>>;
  /**
   * Unlinks an identity from `userId` and revokes every session opened through it; not_found when
   * that user has no such link. The value is the number of sessions revoked.
   */
  removeLinkedIdentity(userId: string, provider: string, subject: string, nowMs: number, actor: Actor): Promise<Committed<number>>;
  /**
   * Revokes the active sessions opened through providers not in `providers` (a provider removed
   * from the configuration). Returns undefined, writing nothing, when there are none.
   */
  revokeSessionsOfRemovedProviders(providers: readonly string[], nowMs: number, actor: Actor): Promise<Committed<number> | undefined>;
}
