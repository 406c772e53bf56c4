/**
 * The policy model as the decision core sees it: plain records, no wire types, no storage types.
 * Times are milliseconds since the Unix epoch; 0 means "not set".
 */

/** Tenant id that, in a role binding, means "every tenant". */
export const ALL_TENANTS = "*";

/** A tenant: an isolated space of principals and permissions. */
export interface TenantRecord {
  readonly id: string;
  readonly displayName: string;
  readonly disabled: boolean;
  readonly createdAtMs: number;
}

/** A user. `root` users hold SUPER implicitly. */
export interface UserRecord {
  readonly id: string;
  readonly username: string;
  readonly disabled: boolean;
  readonly root: boolean;
  readonly createdAtMs: number;
  readonly externalIssuer: string;
  readonly externalSubject: string;
}

/** A named set of permission patterns. */
export interface RoleRecord {
  readonly name: string;
  readonly permissions: readonly string[];
  readonly description: string;
  readonly builtin: boolean;
}

/** A role given to a user in a tenant (or in every tenant, ALL_TENANTS). */
export interface BindingRecord {
  readonly tenant: string;
  readonly userId: string;
  readonly role: string;
}

/** An API key as held in memory: its secret only as a hash. */
export interface ApiKeyRecord {
  /** Public key id (safe to log). */
  readonly id: string;
  readonly name: string;
  readonly ownerUserId: string;
  /** Patterns narrowing the owner's permissions; empty means the owner's permissions. */
  readonly permissions: readonly string[];
  /** If non-empty, the key is valid in this tenant only. */
  readonly tenant: string;
  /** Hex SHA-256 of the full key string. */
  readonly secretHash: string;
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
  readonly revokedAtMs: number;
  readonly lastUsedAtMs: number;
}

/** The part of an API key that decisions need: all the core keeps in memory per key. */
export type ApiKeyGrant = Pick<ApiKeyRecord, "id" | "ownerUserId" | "permissions" | "tenant" | "secretHash" | "expiresAtMs" | "revokedAtMs">;

/** Everything the core needs to decide, as loaded from the store at one version. */
export interface PolicyData {
  readonly version: number;
  readonly tenants: readonly TenantRecord[];
  readonly users: readonly UserRecord[];
  readonly roles: readonly RoleRecord[];
  readonly bindings: readonly BindingRecord[];
  /** Only the fields decisions need, so that a million keys fit in memory. */
  readonly apiKeys: readonly ApiKeyGrant[];
}
