/**
 * The one SQL implementation of Store, shared by the Postgres and PGlite drivers. A driver only
 * supplies queries and transactions; every statement, the versioning and the error mapping live here.
 */
import type {
  ApiKeyGrant,
  ApiKeyRecord,
  BindingRecord,
  PolicyData,
  RoleRecord,
  TenantRecord,
  UserRecord,
} from "../core/model.js";
import { ALL_TENANTS } from "../core/model.js";
import { applyMigrations } from "./migrations.js";
import type { SigningKeyRecord } from "../authn/tokens/signing-keys.js";
import type {
  Actor,
  ChangeEntry,
  Committed,
  EntityKind,
  RefreshOutcome,
  RefreshTokenRecord,
  SessionRecord,
  Store,
  UserCredentials,
} from "./store.js";
import { StoreError } from "./store.js";

/** Rows returned by one statement. */
export interface SqlResult<R> {
  readonly rows: R[];
}

/** Something that runs SQL: a connection, a pool or an open transaction. */
export interface SqlSession {
  /** Runs one statement with positional parameters ($1, $2, ...). */
  query<R = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<SqlResult<R>>;
  /** Runs one or more statements without parameters. */
  exec(text: string): Promise<void>;
}

/** How a transaction runs. */
export interface TransactionOptions {
  /** Read-only at REPEATABLE READ: every statement sees the same snapshot. */
  readonly snapshot?: boolean;
}

/** What a database driver provides to the shared SQL store. */
export interface SqlDriver extends SqlSession {
  /** "postgres" or "pglite". */
  readonly name: string;
  /** Schema the driver's search_path points at, created by migrate() when set. */
  readonly schema: string | undefined;
  /**
   * Runs `fn` in one transaction: commits when it resolves, rolls back and rethrows when it
   * rejects. Queries on `tx` never interleave with another transaction's on the same connection.
   */
  transaction<T>(fn: (tx: SqlSession) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /** Releases the connection(s); safe to call twice. */
  close(): Promise<void>;
}

/** A SQL-backed Store, with an operations method to bound the change log. */
export interface SqlStore extends Store {
  /**
   * Deletes change-log entries with version < `beforeVersion` (clamped to the next version).
   * Afterwards changesSince(after) returns undefined for every `after` < beforeVersion - 1.
   */
  trimChangeLog(beforeVersion: number): Promise<void>;
}

/** API keys read per query while loading a snapshot. */
const SNAPSHOT_PAGE = 20_000;

/** Settings row recording where the change log was trimmed (first version still complete). */
const TRIMMED_BEFORE_SETTING = "verdict.change_log_trimmed_before";

const UPSERT_SETTING =
  "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value";

/** Messages for constraint violations, by constraint name, built by each writer from its input. */
type ConstraintMessages = Readonly<Record<string, string>>;

interface Change {
  readonly kind: EntityKind;
  readonly id: string;
}

interface Mutation<T> {
  readonly value: T;
  readonly changes: readonly Change[];
}

interface TenantRow {
  id: string;
  display_name: string;
  disabled: boolean;
  created_at: string | number;
}

interface UserRow {
  id: string;
  username: string;
  disabled: boolean;
  root: boolean;
  created_at: string | number;
  external_issuer: string;
  external_subject: string;
}

interface RoleRow {
  name: string;
  permissions: string[];
  description: string;
  builtin: boolean;
}

interface BindingRow {
  tenant: string;
  user_id: string;
  role: string;
}

interface ApiKeyRow {
  id: string;
  name: string;
  owner_user_id: string;
  permissions: string[];
  tenant: string;
  secret_hash: string;
  created_at: string | number;
  expires_at: string | number;
  revoked_at: string | number;
  last_used_at: string | number;
}

interface SessionRow {
  id: string;
  user_id: string;
  tenant: string;
  created_at: string | number;
  expires_at: string | number;
  revoked_at: string | number;
  revoke_reason: string;
}

interface SigningKeyRow {
  kid: string;
  alg: string;
  public_jwk: string;
  private_key: string;
  encrypted: boolean;
  created_at: string | number;
  retired_at: string | number | null;
}

interface ChangeRow {
  version: string | number;
  kind: string;
  entity_id: string;
}

const TENANT_COLUMNS = "id, display_name, disabled, created_at";
const USER_COLUMNS = "id, username, disabled, root, created_at, external_issuer, external_subject";
const ROLE_COLUMNS = "name, permissions, description, builtin";
const BINDING_COLUMNS = "tenant, user_id, role";
const API_KEY_COLUMNS =
  "id, name, owner_user_id, permissions, tenant, secret_hash, created_at, expires_at, revoked_at, last_used_at";

const API_KEY_GRANT_COLUMNS = "id, owner_user_id, permissions, tenant, secret_hash, expires_at, revoked_at";

const SESSION_COLUMNS = "id, user_id, tenant, created_at, expires_at, revoked_at, revoke_reason";
const SIGNING_KEY_COLUMNS = "kid, alg, public_jwk, private_key, encrypted, created_at, retired_at";
/** Key of the transaction-scoped advisory lock serialising signing-key writes ("vkey" in ASCII). */
const SIGNING_KEY_LOCK = 0x766b6579;

/** Postgres returns bigint as a string (pg) or a number (PGlite); both become a number. */
function toNumber(value: string | number): number {
  return typeof value === "number" ? value : Number(value);
}

function toTenant(row: TenantRow): TenantRecord {
  return { id: row.id, displayName: row.display_name, disabled: row.disabled, createdAtMs: toNumber(row.created_at) };
}

function toUser(row: UserRow): UserRecord {
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

function toRole(row: RoleRow): RoleRecord {
  return { name: row.name, permissions: row.permissions, description: row.description, builtin: row.builtin };
}

function toBinding(row: BindingRow): BindingRecord {
  return { tenant: row.tenant, userId: row.user_id, role: row.role };
}

function toApiKey(row: ApiKeyRow): ApiKeyRecord {
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

type ApiKeyGrantRow = Pick<ApiKeyRow, "id" | "owner_user_id" | "permissions" | "tenant" | "secret_hash" | "expires_at" | "revoked_at">;

const NO_PERMISSIONS: readonly string[] = Object.freeze([]);

function toApiKeyGrant(row: ApiKeyGrantRow, owners: Map<string, string>): ApiKeyGrant {
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

function toSession(row: SessionRow): SessionRecord {
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

function toSigningKey(row: SigningKeyRow): SigningKeyRecord {
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

function toChange(row: ChangeRow): ChangeEntry {
  return { version: toNumber(row.version), kind: row.kind as EntityKind, id: row.entity_id };
}

const CONNECTION_ERROR_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "EAI_AGAIN",
]);

const CONNECTION_ERROR_MESSAGES =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|Query read timeout|Client was closed and is not queryable|Cannot use a pool after calling end|Client has encountered a connection error|PGlite is closed/i;

/**
 * Turns a driver error into a StoreError (or a plain Error for programming errors) whose message
 * and cause carry no query parameters or row contents: PGlite errors hold the parameters and
 * Postgres constraint errors hold the row in `detail`, either of which may include a hash.
 */
function translateError(err: unknown, unique: ConstraintMessages, missing: ConstraintMessages): Error {
  if (err instanceof StoreError) return err;
  const e = (typeof err === "object" && err !== null ? err : {}) as {
    code?: unknown;
    constraint?: unknown;
    message?: unknown;
  };
  const code = typeof e.code === "string" ? e.code : "";
  const constraint = typeof e.constraint === "string" ? e.constraint : "";
  const message = typeof e.message === "string" ? e.message : String(err);
  if (code === "23505") {
    return new StoreError("already_exists", unique[constraint] ?? `already exists (${constraint || "unique key"})`);
  }
  if (code === "23503") {
    return new StoreError("not_found", missing[constraint] ?? `referenced entity not found (${constraint || "foreign key"})`);
  }
  if (code === "40001" || code === "40P01") {
    return new StoreError("conflict", "concurrent update, try again");
  }
  if (
    CONNECTION_ERROR_CODES.has(code) ||
    code.startsWith("08") ||
    code === "57P01" ||
    code === "57P02" ||
    code === "57P03" ||
    code === "53300" ||
    (code === "" && CONNECTION_ERROR_MESSAGES.test(message))
  ) {
    return new StoreError("unavailable", `database unavailable: ${message}`, { cause: err });
  }
  return new Error(code ? `database error ${code}: ${message}` : `database error: ${message}`);
}

/** Inserts bindings in one statement, keeping any that already exist. */
async function insertBindings(tx: SqlSession, bindings: readonly BindingRecord[]): Promise<void> {
  await tx.query(
    `INSERT INTO role_bindings (tenant, user_id, role)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING`,
    [bindings.map((b) => b.tenant), bindings.map((b) => b.userId), bindings.map((b) => b.role)],
  );
}

function dedupe(changes: readonly Change[]): Change[] {
  const seen = new Map<string, Change>();
  for (const change of changes) seen.set(`${change.kind}\u0000${change.id}`, change);
  return [...seen.values()];
}

class SqlStoreImpl implements SqlStore {
  readonly driver: string;

  constructor(private readonly db: SqlDriver) {
    this.driver = db.name;
  }

  /** Runs a read, translating driver errors. */
  private async read<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw translateError(err, {}, {});
    }
  }

  /**
   * Runs one writer transaction: the row changes, then the version bump (whose row lock orders
   * commits), then one change-log row per changed entity at that version.
   */
  private async mutate<T>(
    actor: Actor,
    fn: (tx: SqlSession) => Promise<Mutation<T>>,
    unique: ConstraintMessages = {},
    missing: ConstraintMessages = {},
  ): Promise<Committed<T>> {
    try {
      return await this.db.transaction(async (tx) => {
        const { value, changes } = await fn(tx);
        const bumped = await tx.query<{ version: string | number }>(
          "UPDATE policy_version SET version = version + 1 RETURNING version",
        );
        const version = toNumber(bumped.rows[0].version);
        const entries = dedupe(changes);
        await tx.query(
          `INSERT INTO change_log (version, kind, entity_id, actor_user_id, actor_key_id, at)
           SELECT $1::bigint, c.kind, c.entity_id, $4::text, $5::text, $6::bigint FROM unnest($2::text[], $3::text[]) AS c(kind, entity_id)`,
          [version, entries.map((c) => c.kind), entries.map((c) => c.id), actor.userId, actor.keyId ?? "", Date.now()],
        );
        return { version, value };
      });
    } catch (err) {
      throw translateError(err, unique, missing);
    }
  }

  /**
   * Runs `sql` (parameters: `id`, then `params`; it must return a row per match) as one mutation
   * with one `kind` entry for `id`; not_found, naming `noun` and `id`, when no row matched.
   */
  private updateOne(
    actor: Actor,
    kind: EntityKind,
    noun: string,
    id: string,
    sql: string,
    params: readonly unknown[],
  ): Promise<Committed> {
    return this.mutate(actor, async (tx) => {
      const { rows } = await tx.query(sql, [id, ...params]);
      if (!rows.length) throw new StoreError("not_found", `${noun} "${id}" not found`);
      return { value: undefined, changes: [{ kind, id }] };
    });
  }

  async migrate(): Promise<void> {
    await this.read(() => this.db.transaction((tx) => applyMigrations(tx, this.db.schema)));
  }

  async ping(): Promise<void> {
    await this.read(() => this.db.query("SELECT 1"));
  }

  close(): Promise<void> {
    return this.db.close();
  }

  // PolicyReader

  loadSnapshot(): Promise<PolicyData> {
    return this.read(() =>
      this.db.transaction(
        async (tx) => {
          const version = await tx.query<{ version: string | number }>("SELECT version FROM policy_version");
          const tenants = await tx.query<TenantRow>(`SELECT ${TENANT_COLUMNS} FROM tenants ORDER BY id`);
          const users = await tx.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users ORDER BY id`);
          const roles = await tx.query<RoleRow>(`SELECT ${ROLE_COLUMNS} FROM roles ORDER BY name`);
          const bindings = await tx.query<BindingRow>(
            `SELECT ${BINDING_COLUMNS} FROM role_bindings ORDER BY user_id, tenant, role`,
          );
          // Pages by id, so a million raw rows are never held at once beside their records; only
          // the columns decisions need, with owner ids and empty permission lists shared.
          const owners = new Map<string, string>(users.rows.map((u) => [u.id, u.id]));
          const apiKeys: ApiKeyGrant[] = [];
          for (let after = ""; ; ) {
            const page = await tx.query<ApiKeyGrantRow>(
              `SELECT ${API_KEY_GRANT_COLUMNS} FROM api_keys WHERE id > $1 ORDER BY id LIMIT ${SNAPSHOT_PAGE}`,
              [after],
            );
            for (const row of page.rows) apiKeys.push(toApiKeyGrant(row, owners));
            if (page.rows.length < SNAPSHOT_PAGE) break;
            after = page.rows[page.rows.length - 1].id;
          }
          return {
            version: toNumber(version.rows[0].version),
            tenants: tenants.rows.map(toTenant),
            users: users.rows.map(toUser),
            roles: roles.rows.map(toRole),
            bindings: bindings.rows.map(toBinding),
            apiKeys,
          };
        },
        { snapshot: true },
      ),
    );
  }

  getTenant(id: string): Promise<TenantRecord | undefined> {
    return this.read(async () => {
      const { rows } = await this.db.query<TenantRow>(`SELECT ${TENANT_COLUMNS} FROM tenants WHERE id = $1`, [id]);
      return rows.length ? toTenant(rows[0]) : undefined;
    });
  }

  getUser(id: string): Promise<UserRecord | undefined> {
    return this.read(async () => {
      const { rows } = await this.db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1`, [id]);
      return rows.length ? toUser(rows[0]) : undefined;
    });
  }

  getUserByUsername(username: string): Promise<UserRecord | undefined> {
    return this.read(async () => {
      const { rows } = await this.db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE username = $1`, [
        username,
      ]);
      return rows.length ? toUser(rows[0]) : undefined;
    });
  }

  getUserCredentials(username: string): Promise<UserCredentials | undefined> {
    return this.read(async () => {
      const { rows } = await this.db.query<UserRow & { password_hash: string }>(
        `SELECT ${USER_COLUMNS}, password_hash FROM users WHERE username = $1`,
        [username],
      );
      return rows.length ? { user: toUser(rows[0]), passwordHash: rows[0].password_hash } : undefined;
    });
  }

  getRole(name: string): Promise<RoleRecord | undefined> {
    return this.read(async () => {
      const { rows } = await this.db.query<RoleRow>(`SELECT ${ROLE_COLUMNS} FROM roles WHERE name = $1`, [name]);
      return rows.length ? toRole(rows[0]) : undefined;
    });
  }

  getBindingsForUser(userId: string): Promise<BindingRecord[]> {
    return this.read(async () => {
      const { rows } = await this.db.query<BindingRow>(
        `SELECT ${BINDING_COLUMNS} FROM role_bindings WHERE user_id = $1 ORDER BY tenant, role`,
        [userId],
      );
      return rows.map(toBinding);
    });
  }

  getApiKey(id: string): Promise<ApiKeyRecord | undefined> {
    return this.read(async () => {
      const { rows } = await this.db.query<ApiKeyRow>(`SELECT ${API_KEY_COLUMNS} FROM api_keys WHERE id = $1`, [id]);
      return rows.length ? toApiKey(rows[0]) : undefined;
    });
  }

  listTenants(): Promise<TenantRecord[]> {
    return this.read(async () => {
      const { rows } = await this.db.query<TenantRow>(`SELECT ${TENANT_COLUMNS} FROM tenants ORDER BY id`);
      return rows.map(toTenant);
    });
  }

  listUsers(): Promise<UserRecord[]> {
    return this.read(async () => {
      const { rows } = await this.db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users ORDER BY username`);
      return rows.map(toUser);
    });
  }

  listRoles(): Promise<RoleRecord[]> {
    return this.read(async () => {
      const { rows } = await this.db.query<RoleRow>(`SELECT ${ROLE_COLUMNS} FROM roles ORDER BY name`);
      return rows.map(toRole);
    });
  }

  listBindings(tenant?: string): Promise<BindingRecord[]> {
    return this.read(async () => {
      const { rows } =
        tenant === undefined
          ? await this.db.query<BindingRow>(
              `SELECT ${BINDING_COLUMNS} FROM role_bindings ORDER BY tenant, user_id, role`,
            )
          : await this.db.query<BindingRow>(
              `SELECT ${BINDING_COLUMNS} FROM role_bindings WHERE tenant = $1 ORDER BY user_id, role`,
              [tenant],
            );
      return rows.map(toBinding);
    });
  }

  listApiKeys(ownerUserId?: string): Promise<ApiKeyRecord[]> {
    return this.read(async () => {
      const { rows } =
        ownerUserId === undefined
          ? await this.db.query<ApiKeyRow>(`SELECT ${API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id`)
          : await this.db.query<ApiKeyRow>(
              `SELECT ${API_KEY_COLUMNS} FROM api_keys WHERE owner_user_id = $1 ORDER BY created_at, id`,
              [ownerUserId],
            );
      return rows.map(toApiKey);
    });
  }

  countAdmins(role: string): Promise<number> {
    return this.read(async () => {
      const { rows } = await this.db.query<{ count: string | number }>(
        `SELECT count(DISTINCT u.id) AS count FROM users u JOIN role_bindings b ON b.user_id = u.id
         WHERE b.tenant = $1 AND b.role = $2 AND NOT u.root AND NOT u.disabled`,
        [ALL_TENANTS, role],
      );
      return toNumber(rows[0].count);
    });
  }

  // ChangeFeed

  currentVersion(): Promise<number> {
    return this.read(async () => {
      const { rows } = await this.db.query<{ version: string | number }>("SELECT version FROM policy_version");
      return toNumber(rows[0].version);
    });
  }

  /**
   * As ChangeFeed promises, except that a version's entries are never split across pages (a
   * caller resuming after the last version it saw would otherwise miss the rest): a page ends
   * before an incomplete last version, and a single version with more than `limit` entries is
   * returned whole.
   */
  async changesSince(after: number, limit: number): Promise<ChangeEntry[] | undefined> {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, got ${limit}`);
    return this.read(async () => {
      // One statement, so the trim mark and the entries come from one snapshot.
      const { rows } = await this.db.query<Partial<ChangeRow> & { trimmed_before: string }>(
        `SELECT t.trimmed_before, c.version, c.kind, c.entity_id
         FROM (SELECT COALESCE((SELECT value FROM settings WHERE name = $3), '0') AS trimmed_before) t
         LEFT JOIN LATERAL (
           SELECT version, kind, entity_id FROM change_log WHERE version > $1
           ORDER BY version, kind, entity_id LIMIT $2
         ) c ON true`,
        [after, limit + 1, TRIMMED_BEFORE_SETTING],
      );
      if (after < Number(rows[0].trimmed_before) - 1) return undefined;
      const entries = rows.filter((row) => row.version != null).map((row) => toChange(row as ChangeRow));
      if (entries.length <= limit) return entries;
      const cut = entries[limit].version;
      const whole = entries.slice(0, limit).filter((entry) => entry.version < cut);
      if (whole.length > 0) return whole;
      const single = await this.db.query<ChangeRow>(
        "SELECT version, kind, entity_id FROM change_log WHERE version = $1 ORDER BY kind, entity_id",
        [cut],
      );
      return single.rows.map(toChange);
    });
  }

  async trimChangeLog(beforeVersion: number): Promise<void> {
    await this.read(() =>
      this.db.transaction(async (tx) => {
        const { rows } = await tx.query<{ before: string | number }>(
          `SELECT GREATEST(LEAST($1::bigint, (SELECT version FROM policy_version) + 1),
                           COALESCE((SELECT value::bigint FROM settings WHERE name = $2), 0)) AS before`,
          [beforeVersion, TRIMMED_BEFORE_SETTING],
        );
        const before = toNumber(rows[0].before);
        await tx.query("DELETE FROM change_log WHERE version < $1", [before]);
        await tx.query(UPSERT_SETTING, [TRIMMED_BEFORE_SETTING, String(before)]);
      }),
    );
  }

  // PolicyWriter: tenants

  createTenant(tenant: TenantRecord, actor: Actor): Promise<Committed<TenantRecord>> {
    return this.mutate(
      actor,
      async (tx) => {
        const { rows } = await tx.query<TenantRow>(
          `INSERT INTO tenants (id, display_name, disabled, created_at) VALUES ($1, $2, $3, $4)
           RETURNING ${TENANT_COLUMNS}`,
          [tenant.id, tenant.displayName, tenant.disabled, tenant.createdAtMs],
        );
        return { value: toTenant(rows[0]), changes: [{ kind: "tenant", id: tenant.id }] };
      },
      { tenants_pkey: `tenant "${tenant.id}" already exists` },
    );
  }

  setTenantDisabled(id: string, disabled: boolean, actor: Actor): Promise<Committed> {
    return this.updateOne(actor, "tenant", "tenant", id, "UPDATE tenants SET disabled = $2 WHERE id = $1 RETURNING id", [disabled]);
  }

  deleteTenant(id: string, actor: Actor): Promise<Committed> {
    return this.mutate(actor, async (tx) => {
      const { rows } = await tx.query("DELETE FROM tenants WHERE id = $1 RETURNING id", [id]);
      if (!rows.length) throw new StoreError("not_found", `tenant "${id}" not found`);
      const bindings = await tx.query<{ user_id: string }>(
        "DELETE FROM role_bindings WHERE tenant = $1 RETURNING user_id",
        [id],
      );
      return {
        value: undefined,
        changes: [{ kind: "tenant", id }, ...bindings.rows.map((row) => ({ kind: "binding" as const, id: row.user_id }))],
      };
    });
  }

  // PolicyWriter: users

  createUser(user: UserRecord, passwordHash: string, actor: Actor): Promise<Committed<UserRecord>> {
    return this.mutate(
      actor,
      async (tx) => {
        const { rows } = await tx.query<UserRow>(
          `INSERT INTO users (id, username, password_hash, disabled, root, created_at, external_issuer, external_subject)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${USER_COLUMNS}`,
          [
            user.id,
            user.username,
            passwordHash,
            user.disabled,
            user.root,
            user.createdAtMs,
            user.externalIssuer,
            user.externalSubject,
          ],
        );
        return { value: toUser(rows[0]), changes: [{ kind: "user", id: user.id }] };
      },
      {
        users_pkey: `user id "${user.id}" already exists`,
        users_username_key: `username "${user.username}" is already taken`,
        users_external_identity_key: `external identity "${user.externalSubject}" of issuer "${user.externalIssuer}" is already linked to a user`,
      },
    );
  }

  setUserDisabled(id: string, disabled: boolean, actor: Actor): Promise<Committed> {
    return this.updateOne(actor, "user", "user", id, "UPDATE users SET disabled = $2 WHERE id = $1 RETURNING id", [disabled]);
  }

  deleteUser(id: string, actor: Actor): Promise<Committed> {
    return this.mutate(actor, async (tx) => {
      const bindings = await tx.query("DELETE FROM role_bindings WHERE user_id = $1 RETURNING user_id", [id]);
      const { rows } = await tx.query("DELETE FROM users WHERE id = $1 RETURNING id", [id]);
      if (!rows.length) throw new StoreError("not_found", `user "${id}" not found`);
      const keys = await tx.query<{ id: string }>(
        "UPDATE api_keys SET revoked_at = $2 WHERE owner_user_id = $1 AND revoked_at = 0 RETURNING id",
        [id, Date.now()],
      );
      const changes: Change[] = [{ kind: "user", id }];
      if (bindings.rows.length) changes.push({ kind: "binding", id });
      for (const key of keys.rows) changes.push({ kind: "api_key", id: key.id });
      return { value: undefined, changes };
    });
  }

  setPassword(id: string, passwordHash: string, actor: Actor): Promise<Committed> {
    return this.updateOne(actor, "user", "user", id, "UPDATE users SET password_hash = $2 WHERE id = $1 RETURNING id", [
      passwordHash,
    ]);
  }

  // PolicyWriter: roles and bindings

  putRole(role: RoleRecord, actor: Actor): Promise<Committed<RoleRecord>> {
    return this.mutate(actor, async (tx) => {
      const { rows } = await tx.query<RoleRow>(
        `INSERT INTO roles (name, permissions, description, builtin) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO UPDATE SET permissions = EXCLUDED.permissions,
           description = EXCLUDED.description, builtin = EXCLUDED.builtin
         RETURNING ${ROLE_COLUMNS}`,
        [role.name, [...role.permissions], role.description, role.builtin],
      );
      return { value: toRole(rows[0]), changes: [{ kind: "role", id: role.name }] };
    });
  }

  deleteRole(name: string, actor: Actor): Promise<Committed> {
    return this.mutate(actor, async (tx) => {
      const bindings = await tx.query<{ user_id: string }>(
        "DELETE FROM role_bindings WHERE role = $1 RETURNING user_id",
        [name],
      );
      const { rows } = await tx.query("DELETE FROM roles WHERE name = $1 RETURNING name", [name]);
      if (!rows.length) throw new StoreError("not_found", `role "${name}" not found`);
      return {
        value: undefined,
        changes: [{ kind: "role", id: name }, ...bindings.rows.map((row) => ({ kind: "binding" as const, id: row.user_id }))],
      };
    });
  }

  async bindRoles(bindings: readonly BindingRecord[], actor: Actor): Promise<Committed> {
    if (bindings.length === 0) return { version: await this.currentVersion(), value: undefined };
    const tenants = [...new Set(bindings.map((b) => b.tenant).filter((t) => t !== ALL_TENANTS))];
    const missingUser = bindings.map((b) => b.userId).join(", ");
    const missingRole = bindings.map((b) => b.role).join(", ");
    return this.mutate(
      actor,
      async (tx) => {
        // FOR SHARE keeps a concurrent deleteTenant from leaving bindings to a deleted tenant.
        const found = await tx.query<{ id: string }>("SELECT id FROM tenants WHERE id = ANY($1::text[]) FOR SHARE", [
          tenants,
        ]);
        const existing = new Set(found.rows.map((row) => row.id));
        const absent = tenants.filter((t) => !existing.has(t));
        if (absent.length) throw new StoreError("not_found", `tenant "${absent.join('", "')}" not found`);
        await insertBindings(tx, bindings);
        return { value: undefined, changes: bindings.map((b) => ({ kind: "binding" as const, id: b.userId })) };
      },
      {},
      {
        role_bindings_user_fkey: `user not found (one of: ${missingUser})`,
        role_bindings_role_fkey: `role not found (one of: ${missingRole})`,
      },
    );
  }

  unbindRoles(bindings: readonly BindingRecord[], actor: Actor): Promise<Committed> {
    return this.mutate(actor, async (tx) => {
      const { rows } = await tx.query<{ user_id: string }>(
        `DELETE FROM role_bindings b USING unnest($1::text[], $2::text[], $3::text[]) AS x(tenant, user_id, role)
         WHERE b.tenant = x.tenant AND b.user_id = x.user_id AND b.role = x.role RETURNING b.user_id`,
        [bindings.map((b) => b.tenant), bindings.map((b) => b.userId), bindings.map((b) => b.role)],
      );
      if (!rows.length) throw new StoreError("not_found", "none of the bindings exist");
      return { value: undefined, changes: rows.map((row) => ({ kind: "binding" as const, id: row.user_id })) };
    });
  }

  // PolicyWriter: API keys

  createApiKey(key: ApiKeyRecord, actor: Actor): Promise<Committed<ApiKeyRecord>> {
    return this.mutate(
      actor,
      async (tx) => {
        // FOR SHARE keeps a concurrent deleteUser from missing this key when it revokes the owner's keys.
        const owner = await tx.query("SELECT id FROM users WHERE id = $1 FOR SHARE", [key.ownerUserId]);
        if (!owner.rows.length) throw new StoreError("not_found", `user "${key.ownerUserId}" not found`);
        const { rows } = await tx.query<ApiKeyRow>(
          `INSERT INTO api_keys (${API_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           RETURNING ${API_KEY_COLUMNS}`,
          [
            key.id,
            key.name,
            key.ownerUserId,
            [...key.permissions],
            key.tenant,
            key.secretHash,
            key.createdAtMs,
            key.expiresAtMs,
            key.revokedAtMs,
            key.lastUsedAtMs,
          ],
        );
        return { value: toApiKey(rows[0]), changes: [{ kind: "api_key", id: key.id }] };
      },
      {
        api_keys_pkey: `API key id "${key.id}" already exists`,
        api_keys_secret_hash_key: `another API key already has this secret (key id "${key.id}")`,
      },
    );
  }

  revokeApiKey(id: string, revokedAtMs: number, actor: Actor): Promise<Committed> {
    return this.updateOne(
      actor,
      "api_key",
      "API key",
      id,
      "UPDATE api_keys SET revoked_at = CASE WHEN revoked_at = 0 THEN $2 ELSE revoked_at END WHERE id = $1 RETURNING id",
      [revokedAtMs],
    );
  }

  rotateApiKey(id: string, secretHash: string, actor: Actor): Promise<Committed<ApiKeyRecord>> {
    return this.mutate(
      actor,
      async (tx) => {
        const { rows } = await tx.query<ApiKeyRow>(
          `UPDATE api_keys SET secret_hash = $2, last_used_at = 0 WHERE id = $1 RETURNING ${API_KEY_COLUMNS}`,
          [id, secretHash],
        );
        if (!rows.length) throw new StoreError("not_found", `API key "${id}" not found`);
        return { value: toApiKey(rows[0]), changes: [{ kind: "api_key", id }] };
      },
      { api_keys_secret_hash_key: `another API key already has this secret (rotating key id "${id}")` },
    );
  }

  async recordKeyUse(uses: ReadonlyMap<string, number>): Promise<void> {
    if (uses.size === 0) return;
    await this.read(() =>
      this.db.query(
        `UPDATE api_keys k SET last_used_at = u.at FROM unnest($1::text[], $2::bigint[]) AS u(id, at)
         WHERE k.id = u.id AND u.at > k.last_used_at`,
        [[...uses.keys()], [...uses.values()].map((ms) => Math.trunc(ms))],
      ),
    );
  }

  // SessionStore

  createSession(session: SessionRecord, refresh: RefreshTokenRecord, actor: Actor): Promise<Committed<SessionRecord>> {
    return this.mutate(
      actor,
      async (tx) => {
        const { rows } = await tx.query<SessionRow>(
          `INSERT INTO sessions (${SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${SESSION_COLUMNS}`,
          [session.id, session.userId, session.tenant, session.createdAtMs, session.expiresAtMs, session.revokedAtMs, session.revokeReason],
        );
        await tx.query("INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)", [
          refresh.hash,
          session.id,
          refresh.issuedAtMs,
          refresh.expiresAtMs,
        ]);
        return { value: toSession(rows[0]), changes: [{ kind: "session", id: session.id }] };
      },
      { sessions_pkey: `session "${session.id}" already exists`, refresh_tokens_pkey: "refresh token already exists" },
    );
  }

  refreshSession(hash: string, next: RefreshTokenRecord, nowMs: number, actor: Actor): Promise<Committed<RefreshOutcome>> {
    const invalid = () => new StoreError("not_found", "refresh token unknown, expired or revoked");
    return this.mutate<RefreshOutcome>(
      actor,
      async (tx) => {
        const token = await tx.query<{ session_id: string; used_at: string | number; expires_at: string | number }>(
          "SELECT session_id, used_at, expires_at FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
          [hash],
        );
        if (!token.rows.length) throw invalid();
        const { session_id: sessionId } = token.rows[0];
        const found = await tx.query<SessionRow>(`SELECT ${SESSION_COLUMNS} FROM sessions WHERE id = $1 FOR UPDATE`, [sessionId]);
        const session = toSession(found.rows[0]);
        if (session.revokedAtMs !== 0 || session.expiresAtMs <= nowMs) throw invalid();
        if (toNumber(token.rows[0].used_at) !== 0) {
          const { rows } = await tx.query<SessionRow>(
            `UPDATE sessions SET revoked_at = $2, revoke_reason = 'refresh_reuse' WHERE id = $1 RETURNING ${SESSION_COLUMNS}`,
            [sessionId, nowMs],
          );
          return { value: { kind: "reused", session: toSession(rows[0]) }, changes: [{ kind: "session", id: sessionId }] };
        }
        if (toNumber(token.rows[0].expires_at) <= nowMs) throw invalid();
        await tx.query("UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1", [hash, nowMs]);
        await tx.query("INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)", [
          next.hash,
          sessionId,
          next.issuedAtMs,
          next.expiresAtMs,
        ]);
        const { rows } = await tx.query<SessionRow>(
          `UPDATE sessions SET expires_at = GREATEST(expires_at, $2) WHERE id = $1 RETURNING ${SESSION_COLUMNS}`,
          [sessionId, next.expiresAtMs],
        );
        return { value: { kind: "rotated", session: toSession(rows[0]) }, changes: [{ kind: "session", id: sessionId }] };
      },
      { refresh_tokens_pkey: "refresh token already exists" },
    );
  }

  revokeSession(id: string, revokedAtMs: number, reason: string, actor: Actor): Promise<Committed<SessionRecord>> {
    return this.mutate(actor, async (tx) => {
      const { rows } = await tx.query<SessionRow>(
        `UPDATE sessions SET revoked_at = CASE WHEN revoked_at = 0 THEN $2 ELSE revoked_at END,
           revoke_reason = CASE WHEN revoked_at = 0 THEN $3 ELSE revoke_reason END
         WHERE id = $1 RETURNING ${SESSION_COLUMNS}`,
        [id, revokedAtMs, reason],
      );
      if (!rows.length) throw new StoreError("not_found", `session "${id}" not found`);
      return { value: toSession(rows[0]), changes: [{ kind: "session", id }] };
    });
  }

  findSessionByRefreshHash(hash: string): Promise<SessionRecord | undefined> {
    return this.read(async () => {
      const { rows } = await this.db.query<SessionRow>(
        `SELECT ${SESSION_COLUMNS} FROM sessions WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1)`,
        [hash],
      );
      return rows.length ? toSession(rows[0]) : undefined;
    });
  }

  getSessions(ids: readonly string[]): Promise<SessionRecord[]> {
    if (ids.length === 0) return Promise.resolve([]);
    return this.read(async () => {
      const { rows } = await this.db.query<SessionRow>(`SELECT ${SESSION_COLUMNS} FROM sessions WHERE id = ANY($1::text[]) ORDER BY id`, [[...ids]]);
      return rows.map(toSession);
    });
  }

  listRevokedSessions(sinceMs: number): Promise<SessionRecord[]> {
    return this.read(async () => {
      const { rows } = await this.db.query<SessionRow>(
        `SELECT ${SESSION_COLUMNS} FROM sessions WHERE revoked_at <> 0 AND revoked_at >= $1 ORDER BY id`,
        [Math.trunc(sinceMs)],
      );
      return rows.map(toSession);
    });
  }

  // TokenKeyStore

  listSigningKeys(): Promise<SigningKeyRecord[]> {
    return this.read(async () => {
      const { rows } = await this.db.query<SigningKeyRow>(`SELECT ${SIGNING_KEY_COLUMNS} FROM signing_keys ORDER BY created_at, kid`);
      return rows.map(toSigningKey);
    });
  }

  replaceSigningKeys(records: readonly SigningKeyRecord[], expectedActiveKid: string | null, actor: Actor): Promise<Committed> {
    return this.mutate(actor, async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock($1)", [SIGNING_KEY_LOCK]);
      const old = await tx.query<{ kid: string; retired_at: string | number | null }>("SELECT kid, retired_at FROM signing_keys");
      const active = old.rows.find((row) => row.retired_at === null)?.kid ?? null;
      if (active !== expectedActiveKid) throw new StoreError("conflict", "signing keys changed concurrently; reload them and try again");
      await tx.query("DELETE FROM signing_keys");
      for (const r of records) {
        await tx.query(`INSERT INTO signing_keys (${SIGNING_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
          r.kid,
          r.alg,
          JSON.stringify(r.publicJwk),
          r.privateKey,
          r.encrypted,
          r.createdAtMs,
          r.retiredAtMs,
        ]);
      }
      const kids = new Set([...old.rows.map((row) => row.kid), ...records.map((r) => r.kid)]);
      return { value: undefined, changes: [...kids].map((kid) => ({ kind: "signing_key" as const, id: kid })) };
    });
  }

  createExternalUser(user: UserRecord, bindings: readonly BindingRecord[], actor: Actor): Promise<Committed<UserRecord>> {
    return this.mutate(
      actor,
      async (tx) => {
        const { rows } = await tx.query<UserRow>(
          `INSERT INTO users (id, username, password_hash, disabled, root, created_at, external_issuer, external_subject)
           VALUES ($1, $2, '', $3, false, $4, $5, $6) RETURNING ${USER_COLUMNS}`,
          [user.id, user.username, user.disabled, user.createdAtMs, user.externalIssuer, user.externalSubject],
        );
        await insertBindings(tx, bindings);
        const changes: Change[] = [{ kind: "user", id: user.id }];
        if (bindings.length) changes.push({ kind: "binding", id: user.id });
        return { value: toUser(rows[0]), changes };
      },
      {
        users_pkey: `user id "${user.id}" already exists`,
        users_username_key: `username "${user.username}" is already taken`,
        users_external_identity_key: `external identity "${user.externalSubject}" of issuer "${user.externalIssuer}" is already linked to a user`,
      },
      { role_bindings_role_fkey: `role not found (one of: ${bindings.map((b) => b.role).join(", ")})` },
    );
  }

  // PolicyWriter: settings

  getSetting(name: string): Promise<string | undefined> {
    return this.read(async () => {
      const { rows } = await this.db.query<{ value: string }>("SELECT value FROM settings WHERE name = $1", [name]);
      return rows.length ? rows[0].value : undefined;
    });
  }

  async setSetting(name: string, value: string): Promise<void> {
    await this.read(() => this.db.query(UPSERT_SETTING, [name, value]));
  }
}

/**
 * Creates the Store over a driver. The store owns the driver: close() closes it. Call migrate()
 * before anything else on a new database.
 */
export function createSqlStore(driver: SqlDriver): SqlStore {
  return new SqlStoreImpl(driver);
}
