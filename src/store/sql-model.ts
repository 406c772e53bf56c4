/**
 * The SQL model: row types as Postgres returns them, the column lists every statement selects, and
 * the mappers from rows to records. Times are bigint milliseconds; Postgres returns bigint as a
 * string (pg) or a number (PGlite), so every mapper goes through toNumber.
 */
import type { ChangeEntry, EntityKind } from "../core/change-log.js";
import type {
  ApiKeyGrant,
  ApiKeyRecord,
  BindingRecord,
  RoleRecord,
  TenantRecord,
  UserRecord,
} from "../core/model.js";
import type { SigningKeyRecord } from "../core/signing-key-record.js";
import type { SessionRecord } from "./store.js";

/** A bigint column as a driver returns it. */
export type SqlBigint = string | number;

/** A row of `tenants`. */
export interface TenantRow {
  id: string;
  display_name: string;
  disabled: boolean;
  created_at: SqlBigint;
}

/** A row of `users` (without its password hash). */
export interface UserRow {
  id: string;
  username: string;
  disabled: boolean;
  root: boolean;
  created_at: SqlBigint;
  external_issuer: string;
  external_subject: string;
}

/** A row of `roles`. */
export interface RoleRow {
  name: string;
  permissions: string[];
  description: string;
  builtin: boolean;
}

/** A row of `role_bindings`. */
export interface BindingRow {
  tenant: string;
  user_id: string;
  role: string;
}

/** A row of `api_keys`. */
export interface ApiKeyRow {
  id: string;
  name: string;
  owner_user_id: string;
  permissions: string[];
  tenant: string;
  secret_hash: string;
  created_at: SqlBigint;
  expires_at: SqlBigint;
  revoked_at: SqlBigint;
  last_used_at: SqlBigint;
}

/** The columns of `api_keys` a decision needs (API_KEY_GRANT_COLUMNS). */
export type ApiKeyGrantRow = Pick<
  ApiKeyRow,
  "id" | "owner_user_id" | "permissions" | "tenant" | "secret_hash" | "expires_at" | "revoked_at"
>;

/** A row of `sessions`. */
export interface SessionRow {
  id: string;
  user_id: string;
  tenant: string;
  created_at: SqlBigint;
  expires_at: SqlBigint;
  revoked_at: SqlBigint;
  revoke_reason: string;
}

/** A row of `signing_keys`; the public JWK is stored as JSON text. */
export interface SigningKeyRow {
  kid: string;
  alg: string;
  public_jwk: string;
  private_key: string;
  encrypted: boolean;
  created_at: SqlBigint;
  retired_at: SqlBigint | null;
}

/** A row of `change_log`. */
export interface ChangeRow {
  version: SqlBigint;
  kind: string;
  entity_id: string;
}

/** Columns of TenantRow. */
export const TENANT_COLUMNS = "id, display_name, disabled, created_at";
/** Columns of UserRow. */
export const USER_COLUMNS = "id, username, disabled, root, created_at, external_issuer, external_subject";
/** Columns of RoleRow. */
export const ROLE_COLUMNS = "name, permissions, description, builtin";
/** Columns of BindingRow. */
export const BINDING_COLUMNS = "tenant, user_id, role";
/** Columns of ApiKeyRow. */
export const API_KEY_COLUMNS =
  "id, name, owner_user_id, permissions, tenant, secret_hash, created_at, expires_at, revoked_at, last_used_at";
/** Columns of ApiKeyGrantRow. */
export const API_KEY_GRANT_COLUMNS = "id, owner_user_id, permissions, tenant, secret_hash, expires_at, revoked_at";
/** Columns of SessionRow. */
export const SESSION_COLUMNS = "id, user_id, tenant, created_at, expires_at, revoked_at, revoke_reason";
/** Columns of SigningKeyRow. */
export const SIGNING_KEY_COLUMNS = "kid, alg, public_jwk, private_key, encrypted, created_at, retired_at";

/** Creates or replaces one row of `settings` ($1 name, $2 value). */
export const UPSERT_SETTING =
  "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value";

/** Postgres returns bigint as a string (pg) or a number (PGlite); both become a number. */
export function toNumber(value: SqlBigint): number {
  return typeof value === "number" ? value : Number(value);
}

/** Maps a tenants row. */
export function toTenant(row: TenantRow): TenantRecord {
  return { id: row.id, displayName: row.display_name, disabled: row.disabled, createdAtMs: toNumber(row.created_at) };
}

/** Maps a users row. */
export function toUser(row: UserRow): UserRecord {
  return {
    id: row.id,
    username: row.username,
    disabled: row.disabled,
    root: row.root,
    createdAtMs: toNumber(row.created_at),
    externalIssuer: row.external_issuer,
    externalSubject: row.external_subject,
  };
}

/** Maps a roles row. */
export function toRole(row: RoleRow): RoleRecord {
  return { name: row.name, permissions: row.permissions, description: row.description, builtin: row.builtin };
}

/** Maps a role_bindings row. */
export function toBinding(row: BindingRow): BindingRecord {
  return { tenant: row.tenant, userId: row.user_id, role: row.role };
}

/** Maps an api_keys row. */
export function toApiKey(row: ApiKeyRow): ApiKeyRecord {
  return {
    id: row.id,
    name: row.name,
    ownerUserId: row.owner_user_id,
    permissions: row.permissions,
    tenant: row.tenant,
    secretHash: row.secret_hash,
    createdAtMs: toNumber(row.created_at),
    expiresAtMs: toNumber(row.expires_at),
    revokedAtMs: toNumber(row.revoked_at),
    lastUsedAtMs: toNumber(row.last_used_at),
  };
}

const NO_PERMISSIONS: readonly string[] = Object.freeze([]);

/**
 * Maps the decision columns of an api_keys row, sharing owner id strings (through `owners`) and
 * one frozen empty permission list, so a million keys in a snapshot cost as little as possible.
 */
export function toApiKeyGrant(row: ApiKeyGrantRow, owners: Map<string, string>): ApiKeyGrant {
  return {
    id: row.id,
    ownerUserId: owners.get(row.owner_user_id) ?? row.owner_user_id,
    permissions: row.permissions.length === 0 ? NO_PERMISSIONS : row.permissions,
    tenant: row.tenant,
    secretHash: row.secret_hash,
    expiresAtMs: toNumber(row.expires_at),
    revokedAtMs: toNumber(row.revoked_at),
  };
}

/** Maps a sessions row. */
export function toSession(row: SessionRow): SessionRecord {
  return {
    id: row.id,
    userId: row.user_id,
    tenant: row.tenant,
    createdAtMs: toNumber(row.created_at),
    expiresAtMs: toNumber(row.expires_at),
    revokedAtMs: toNumber(row.revoked_at),
    revokeReason: row.revoke_reason,
  };
}

/** Maps a signing_keys row. */
export function toSigningKey(row: SigningKeyRow): SigningKeyRecord {
  return {
    kid: row.kid,
    alg: row.alg as SigningKeyRecord["alg"],
    publicJwk: JSON.parse(row.public_jwk) as SigningKeyRecord["publicJwk"],
    privateKey: row.private_key,
    encrypted: row.encrypted,
    createdAtMs: toNumber(row.created_at),
    retiredAtMs: row.retired_at === null ? null : toNumber(row.retired_at),
  };
}

/** Maps a change_log row. */
export function toChange(row: ChangeRow): ChangeEntry {
  return { version: toNumber(row.version), kind: row.kind as EntityKind, id: row.entity_id };
}
