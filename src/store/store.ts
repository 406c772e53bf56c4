/**
 * The storage interface, split by capability (read, write, change feed). Postgres is the source
 * of truth: every mutation writes its rows and one change-log entry per changed entity in one
 * transaction, under a version that increases monotonically in commit order.
 *
 * A new store method goes into the capability interface below that it belongs to, and its SQL
 * into the matching file: PolicyReader in sql-policy-reader.ts, PolicyWriter in
 * sql-policy-writer.ts, ChangeFeed in sql-change-feed.ts, SessionStore in sql-sessions.ts,
 * TokenKeyStore in sql-token-keys.ts, IdentityStore (identity-store.ts) in sql-identity-store.ts.
 */
import type {
  ApiKeyRecord,
  BindingRecord,
  PolicyData,
  RoleRecord,
  TenantRecord,
  UserRecord,
} from "../core/model.js";
import type { ChangeEntry } from "../core/change-log.js";
import type { SigningKeyRecord } from "../core/signing-key-record.js";
import type { IdentityStore } from "./identity-store.js";
import type { ConfigurableScope, ConfiguredLimit } from "../core/rate-limit.js";
import type { Actor, Committed, RefreshTokenRecord, SessionRecord } from "./records.js";

export type { Actor, Committed, RefreshTokenRecord, SessionRecord } from "./records.js";

/** A user with its password hash, for login and password checks only. */
export interface UserCredentials {
  readonly user: UserRecord;
  readonly passwordHash: string;
}

/** Reads the policy: whole snapshots at start, single entities when a change names them. */
export interface PolicyReader {
  /** Loads everything at one consistent version (a single repeatable-read transaction). */
  loadSnapshot(): Promise<PolicyData>;
  getTenant(id: string): Promise<TenantRecord | undefined>;
  /** Finds a user by id. */
  getUser(id: string): Promise<UserRecord | undefined>;
  /** Finds a user by username (case-sensitive). */
  getUserByUsername(username: string): Promise<UserRecord | undefined>;
  getUserCredentials(username: string): Promise<UserCredentials | undefined>;
  getRole(name: string): Promise<RoleRecord | undefined>;
  /** All bindings of one user, in every tenant. */
  getBindingsForUser(userId: string): Promise<BindingRecord[]>;
  getApiKey(id: string): Promise<ApiKeyRecord | undefined>;
  listTenants(): Promise<TenantRecord[]>;
  listUsers(): Promise<UserRecord[]>;
  listRoles(): Promise<RoleRecord[]>;
  /** Bindings in one tenant, or all bindings when tenant is undefined. */
  listBindings(tenant?: string): Promise<BindingRecord[]>;
  /** Keys of one owner, or all keys when ownerUserId is undefined. */
  listApiKeys(ownerUserId?: string): Promise<ApiKeyRecord[]>;
  /** Counts users holding `role` in ALL_TENANTS that are neither root nor disabled. */
  countAdmins(role: string): Promise<number>;
}

/** Reads the change log. */
export interface ChangeFeed {
  /** The newest committed version (0 for an empty log). */
  currentVersion(): Promise<number>;
  /**
   * Entries with version > `after`, ascending, at most `limit`. Returns `undefined` when the log
   * was trimmed past `after` (the caller must reload the whole snapshot).
   */
  changesSince(after: number, limit: number): Promise<ChangeEntry[] | undefined>;
}

/**
 * Errors a store throws, with stable codes mapped to API errors at the edge; "invalid_argument"
 * when the database refuses a value (a NUL byte, a character it cannot encode).
 */
export class StoreError extends Error {
  constructor(
    readonly code: "already_exists" | "not_found" | "conflict" | "unavailable" | "invalid_argument",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "StoreError";
  }
}

/** Writes the policy. Each method runs one transaction and appends to the change log. */
export interface PolicyWriter {
  createTenant(tenant: TenantRecord, actor: Actor): Promise<Committed<TenantRecord>>;
  setTenantDisabled(id: string, disabled: boolean, actor: Actor): Promise<Committed>;
  /** Deletes the tenant and every binding in it. */
  deleteTenant(id: string, actor: Actor): Promise<Committed>;

  /** Creates a user; throws already_exists for a taken username. */
  createUser(user: UserRecord, passwordHash: string, actor: Actor): Promise<Committed<UserRecord>>;
  /**
   * Disables or enables a user. Disabling also revokes every active session of the user (reason
   * "user_disabled") in the same version, one "session" entry each: re-enabling brings none back.
   */
  setUserDisabled(id: string, disabled: boolean, actor: Actor): Promise<Committed>;
  /** Deletes the user, its bindings and its API keys (keys are marked revoked, not removed). */
  deleteUser(id: string, actor: Actor): Promise<Committed>;
  /**
   * Sets a password hash and revokes every active session of the user but `keepSessionId` (reason
   * "password_changed") in the same version, one "session" entry each.
   */
  setPassword(id: string, passwordHash: string, actor: Actor, keepSessionId?: string): Promise<Committed>;

  /** Creates or replaces a role. */
  putRole(role: RoleRecord, actor: Actor): Promise<Committed<RoleRecord>>;
  /** Deletes the role and every binding of it. */
  deleteRole(name: string, actor: Actor): Promise<Committed>;

  /** Adds bindings (existing ones are kept as they are). */
  bindRoles(bindings: readonly BindingRecord[], actor: Actor): Promise<Committed>;
  /** Removes bindings; throws not_found if none of them existed. */
  unbindRoles(bindings: readonly BindingRecord[], actor: Actor): Promise<Committed>;

  createApiKey(key: ApiKeyRecord, actor: Actor): Promise<Committed<ApiKeyRecord>>;
  revokeApiKey(id: string, revokedAtMs: number, actor: Actor): Promise<Committed>;
  /** Replaces the key's secret hash (and clears last use); the old secret stops working. */
  rotateApiKey(id: string, secretHash: string, actor: Actor): Promise<Committed<ApiKeyRecord>>;
  /** Records last use of keys in one statement; no change-log entry (not policy). */
  recordKeyUse(uses: ReadonlyMap<string, number>): Promise<void>;

  /** Reads a small named setting (bootstrap state and the like). */
  getSetting(name: string): Promise<string | undefined>;
  setSetting(name: string, value: string): Promise<void>;
}

/**
 * What presenting a refresh token did: "rotated" (the token is now used and `next` replaces it) or
 * "reused" (the token had been used before: the whole session is now revoked).
 */
export interface RefreshOutcome {
  readonly kind: "rotated" | "reused";
  readonly session: SessionRecord;
}

/**
 * Sessions and refresh tokens. Every write appends a "session" change-log entry (the session id),
 * so that revocations reach every replica by version.
 */
export interface SessionStore {
  /** Opens a session with its first refresh token. */
  createSession(session: SessionRecord, refresh: RefreshTokenRecord, actor: Actor): Promise<Committed<SessionRecord>>;
  /**
   * Presents the refresh token hashed as `hash` at `nowMs`, in one transaction with the token row
   * locked (two concurrent presentations: one rotates, the other is reuse). An unused token of an
   * active session is marked used and `next` is stored; a used one revokes the session
   * (reason "refresh_reuse"). Throws not_found, writing nothing, for an unknown or expired token
   * or a session already revoked or expired.
   */
  refreshSession(hash: string, next: RefreshTokenRecord, nowMs: number, actor: Actor): Promise<Committed<RefreshOutcome>>;
  /** Revokes a session (idempotent: an earlier revocation keeps its time and reason); not_found if missing. */
  revokeSession(id: string, revokedAtMs: number, reason: string, actor: Actor): Promise<Committed<SessionRecord>>;
  /** The session a refresh token (by hash) belongs to, used or not. */
  findSessionByRefreshHash(hash: string): Promise<SessionRecord | undefined>;
  /** Sessions by id; missing ids are left out. */
  getSessions(ids: readonly string[]): Promise<SessionRecord[]>;
  /** Sessions revoked at or after `sinceMs` (what replicas must remember). */
  listRevokedSessions(sinceMs: number): Promise<SessionRecord[]>;
}

/**
 * Verdict's own signing keys (shared by every replica) and users mapped from external issuers.
 * Key writes append one "signing_key" entry per kid added, changed or removed.
 */
export interface TokenKeyStore {
  /** Every stored signing key, oldest first. */
  listSigningKeys(): Promise<SigningKeyRecord[]>;
  /**
   * Replaces the stored keys with `records` if the active key in the store is still
   * `expectedActiveKid` (null: no key stored yet), under a lock; otherwise throws conflict and
   * writes nothing (another replica created or rotated keys first: reload and retry).
   */
  replaceSigningKeys(records: readonly SigningKeyRecord[], expectedActiveKid: string | null, actor: Actor): Promise<Committed>;
  /**
   * Creates a user mapped from an external identity (no usable password) with its bindings, in
   * one version; already_exists when the identity or username is taken.
   */
  createExternalUser(user: UserRecord, bindings: readonly BindingRecord[], actor: Actor): Promise<Committed<UserRecord>>;
}

/**
 * Rate limits set for API keys, roles and tenants. Every write appends one "rate_limit" entry
 * named "scope:subject", so that every replica applies it by version.
 */
export interface RateLimitStore {
  listRateLimits(): Promise<ConfiguredLimit[]>;
  getRateLimit(scope: ConfigurableScope, id: string): Promise<ConfiguredLimit | undefined>;
  /** Creates or replaces the limit of one scope. */
  putRateLimit(limit: ConfiguredLimit, actor: Actor): Promise<Committed>;
  /** Removes the limit of one scope; not_found when there is none. */
  deleteRateLimit(scope: ConfigurableScope, id: string, actor: Actor): Promise<Committed>;
}

/** A store driver: everything above plus lifecycle. */
export interface Store extends PolicyReader, PolicyWriter, ChangeFeed, SessionStore, TokenKeyStore, RateLimitStore {
  /** "postgres" or "pglite", for logs and metrics. */
  readonly driver: string;
  /** Linked external identities, their sessions and pending sign-ins. */
  readonly identities: IdentityStore;
  /** Applies pending migrations under an advisory lock. */
  migrate(): Promise<void>;
  /** Cheap liveness probe of the database connection. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
