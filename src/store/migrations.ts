/**
 * The database schema as an ordered list of SQL migrations, kept in TypeScript so that the build
 * output carries them. The same SQL runs on Postgres 15 and on PGlite.
 */
import type { SqlSession } from "./sql-driver.js";

/** One schema step. Versions are applied in ascending order, each exactly once. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  /** One or more SQL statements without parameters. */
  readonly sql: string;
}

/**
 * Key of the transaction-scoped advisory lock that serialises migrations, so that several replicas
 * starting at once apply each migration exactly once ("verd" in ASCII).
 */
const MIGRATION_LOCK_KEY = 0x76657264;

/** Every migration, oldest first. Append only: an applied migration is never edited. */
export const MIGRATIONS: readonly Migration[] = Object.freeze([
  {
    version: 1,
    name: "policy tables, change log and built-in roles",
    sql: `
CREATE TABLE tenants (
  id text NOT NULL CONSTRAINT tenants_pkey PRIMARY KEY,
  display_name text NOT NULL DEFAULT '',
  disabled boolean NOT NULL DEFAULT false,
  created_at bigint NOT NULL
);

CREATE TABLE users (
  id text NOT NULL CONSTRAINT users_pkey PRIMARY KEY,
  username text NOT NULL CONSTRAINT users_username_key UNIQUE,
  password_hash text NOT NULL,
  disabled boolean NOT NULL DEFAULT false,
  root boolean NOT NULL DEFAULT false,
  created_at bigint NOT NULL,
  external_issuer text NOT NULL DEFAULT '',
  external_subject text NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX users_external_identity_key ON users (external_issuer, external_subject)
  WHERE external_issuer <> '';

CREATE TABLE roles (
  name text NOT NULL CONSTRAINT roles_pkey PRIMARY KEY,
  permissions text[] NOT NULL DEFAULT '{}',
  description text NOT NULL DEFAULT '',
  builtin boolean NOT NULL DEFAULT false
);

-- tenant may be '*' (every tenant), so it has no foreign key; deleting a tenant deletes its
-- bindings explicitly.
CREATE TABLE role_bindings (
  tenant text NOT NULL,
  user_id text NOT NULL CONSTRAINT role_bindings_user_fkey REFERENCES users (id) ON DELETE CASCADE,
  role text NOT NULL CONSTRAINT role_bindings_role_fkey REFERENCES roles (name) ON DELETE CASCADE,
  CONSTRAINT role_bindings_pkey PRIMARY KEY (tenant, user_id, role)
);
CREATE INDEX role_bindings_user_idx ON role_bindings (user_id);
CREATE INDEX role_bindings_role_idx ON role_bindings (role);

-- Keys outlive their owner (deleting a user revokes its keys), so owner_user_id has no foreign key.
CREATE TABLE api_keys (
  id text NOT NULL CONSTRAINT api_keys_pkey PRIMARY KEY,
  name text NOT NULL,
  owner_user_id text NOT NULL,
  permissions text[] NOT NULL DEFAULT '{}',
  tenant text NOT NULL DEFAULT '',
  secret_hash text NOT NULL CONSTRAINT api_keys_secret_hash_key UNIQUE,
  created_at bigint NOT NULL,
  expires_at bigint NOT NULL DEFAULT 0,
  revoked_at bigint NOT NULL DEFAULT 0,
  last_used_at bigint NOT NULL DEFAULT 0
);
CREATE INDEX api_keys_owner_idx ON api_keys (owner_user_id);

CREATE TABLE settings (
  name text NOT NULL CONSTRAINT settings_pkey PRIMARY KEY,
  value text NOT NULL
);

-- One row per changed entity; a mutation changing several entities writes several rows at one
-- version, so the key is (version, kind, entity_id).
CREATE TABLE change_log (
  version bigint NOT NULL,
  kind text NOT NULL,
  entity_id text NOT NULL,
  actor_user_id text NOT NULL,
  actor_key_id text NOT NULL DEFAULT '',
  at bigint NOT NULL,
  CONSTRAINT change_log_pkey PRIMARY KEY (version, kind, entity_id)
);

-- The single version counter; its row lock serialises writers, so versions commit in order.
CREATE TABLE policy_version (
  id boolean NOT NULL DEFAULT true CONSTRAINT policy_version_pkey PRIMARY KEY CHECK (id),
  version bigint NOT NULL
);
INSERT INTO policy_version (id, version) VALUES (true, 0);

INSERT INTO roles (name, permissions, description, builtin) VALUES
  ('READ', ARRAY['read:*'], 'Read every resource.', true),
  ('WRITE', ARRAY['read:*', 'write:*', 'create:*', 'update:*', 'delete:*'],
    'Read, create, update and delete every resource.', true),
  ('ADMIN', ARRAY['*'], 'Every action in the tenants where it is bound, including administration.', true),
  ('SUPER', ARRAY['*'], 'Every action in every tenant; held by root only.', true);
`,
  },
  {
    version: 2,
    name: "sessions, refresh tokens and signing keys",
    sql: `
-- A session is one refresh-token family: Login opens it, Refresh extends it, Logout or reuse of a
-- used refresh token revokes it. Access tokens carry its id as "sid".
CREATE TABLE sessions (
  id text NOT NULL CONSTRAINT sessions_pkey PRIMARY KEY,
  user_id text NOT NULL,
  tenant text NOT NULL DEFAULT '',
  created_at bigint NOT NULL,
  expires_at bigint NOT NULL,
  revoked_at bigint NOT NULL DEFAULT 0,
  revoke_reason text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_revoked_idx ON sessions (revoked_at) WHERE revoked_at <> 0;

-- Refresh tokens only as SHA-256 hashes; a used one stays (used_at <> 0) to detect reuse.
CREATE TABLE refresh_tokens (
  token_hash text NOT NULL CONSTRAINT refresh_tokens_pkey PRIMARY KEY,
  session_id text NOT NULL CONSTRAINT refresh_tokens_session_fkey REFERENCES sessions (id) ON DELETE CASCADE,
  issued_at bigint NOT NULL,
  expires_at bigint NOT NULL,
  used_at bigint NOT NULL DEFAULT 0
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

-- Verdict's own signing keys, shared by every replica. private_key is AES-256-GCM sealed when
-- encrypted is true, plain PKCS8 PEM otherwise. retired_at is NULL for the one active key.
CREATE TABLE signing_keys (
  kid text NOT NULL CONSTRAINT signing_keys_pkey PRIMARY KEY,
  alg text NOT NULL,
  public_jwk text NOT NULL,
  private_key text NOT NULL,
  encrypted boolean NOT NULL,
  created_at bigint NOT NULL,
  retired_at bigint
);
`,
  },
  {
    version: 3,
    name: "names unique ignoring case",
    sql: `
-- A user "Root" beside root, or a role "Read" beside the built-in READ, would be a confusing twin:
-- usernames and role names are unique ignoring case (lookups stay exact).
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
CREATE UNIQUE INDEX roles_name_lower_key ON roles (lower(name));
`,
  },
  {
    version: 4,
    name: "linked identities, their sessions and pending sign-ins",
    sql: `
-- An external identity (provider id from VERDICT_OAUTH_PROVIDERS, subject at that provider) linked
-- to a user. Deleting the user deletes its links.
CREATE TABLE linked_identities (
  provider text NOT NULL,
  subject text NOT NULL,
  user_id text NOT NULL CONSTRAINT linked_identities_user_fkey REFERENCES users (id) ON DELETE CASCADE,
  email text NOT NULL DEFAULT '',
  created_at bigint NOT NULL,
  CONSTRAINT linked_identities_pkey PRIMARY KEY (provider, subject)
);
CREATE INDEX linked_identities_user_idx ON linked_identities (user_id);

-- Which identity opened a session, so that unlinking it or removing its provider revokes the
-- session.
CREATE TABLE identity_sessions (
  session_id text NOT NULL CONSTRAINT identity_sessions_pkey PRIMARY KEY
    CONSTRAINT identity_sessions_session_fkey REFERENCES sessions (id) ON DELETE CASCADE,
  provider text NOT NULL,
  subject text NOT NULL
);
CREATE INDEX identity_sessions_identity_idx ON identity_sessions (provider, subject);

-- A sign-in between the redirect to the provider and its callback: found by the SHA-256 of its
-- state, deleted when the callback takes it (single use) or once expired.
CREATE TABLE oauth_pending (
  state_hash text NOT NULL CONSTRAINT oauth_pending_pkey PRIMARY KEY,
  provider text NOT NULL,
  nonce text NOT NULL,
  code_verifier text NOT NULL,
  return_to text NOT NULL,
  link_user_id text NOT NULL DEFAULT '',
  expires_at bigint NOT NULL
);
CREATE INDEX oauth_pending_expires_idx ON oauth_pending (expires_at);
`,
  },
  {
    version: 5,
    name: "rate limits per key, role and tenant",
    sql: `
-- Rate limits set for one API key, role or tenant (scope 'key', 'role', 'tenant'; subject: the key
-- id, role name or tenant id). 0 switches a window off for that scope. Subjects have no foreign
-- key: a limit outlives a revoked key or a deleted role harmlessly, and is deleted explicitly.
CREATE TABLE rate_limits (
  scope text NOT NULL CONSTRAINT rate_limits_scope_check CHECK (scope IN ('key', 'role', 'tenant')),
  subject text NOT NULL,
  per_minute bigint NOT NULL CONSTRAINT rate_limits_per_minute_check CHECK (per_minute >= 0),
  per_hour bigint NOT NULL CONSTRAINT rate_limits_per_hour_check CHECK (per_hour >= 0),
  burst bigint NOT NULL CONSTRAINT rate_limits_burst_check CHECK (burst >= 0 AND burst <= per_minute),
  shadow boolean NOT NULL DEFAULT false,
  CONSTRAINT rate_limits_pkey PRIMARY KEY (scope, subject)
);
`,
  },
]);

/** Double-quotes an identifier after checking it is a plain lower-case SQL name. */
export function quoteSchemaName(schema: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new Error(`invalid schema name ${JSON.stringify(schema)}: use lower-case letters, digits and _`);
  }
  return `"${schema}"`;
}

/**
 * Applies the migrations not yet recorded in `schema_migrations`, inside the caller's transaction
 * and under a transaction-scoped advisory lock, so concurrent callers wait for each other and each
 * migration runs once. Creates `schema` first when given. Returns the versions it applied.
 */
export async function applyMigrations(tx: SqlSession, schema?: string): Promise<number[]> {
  await tx.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK_KEY]);
  if (schema !== undefined) {
    await tx.exec(`CREATE SCHEMA IF NOT EXISTS ${quoteSchemaName(schema)}`);
  }
  await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
  version integer NOT NULL PRIMARY KEY,
  name text NOT NULL,
  applied_at bigint NOT NULL
)`);
  const { rows } = await tx.query<{ version: number }>("SELECT version FROM schema_migrations");
  const done = new Set(rows.map((row) => Number(row.version)));
  const applied: number[] = [];
  for (const migration of MIGRATIONS) {
    if (done.has(migration.version)) continue;
    await tx.exec(migration.sql);
    await tx.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", [
      migration.version,
      migration.name,
      Date.now(),
    ]);
    applied.push(migration.version);
  }
  return applied;
}
