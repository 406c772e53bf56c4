/**
 * The SQL policy writer: tenants, users, roles, bindings, API keys and settings. Every policy
 * write is one versioned transaction (SqlRunner.mutate); key use and settings are not policy and
 * write no change-log entry.
 */
import type { ApiKeyRecord, BindingRecord, RoleRecord, TenantRecord, UserRecord } from "../core/model.js";
import { ALL_TENANTS } from "../core/model.js";
import type { SqlSession } from "./sql-driver.js";
import type { ConstraintMessages } from "./sql-errors.js";
import {
  API_KEY_COLUMNS,
  type ApiKeyRow,
  ROLE_COLUMNS,
  type RoleRow,
  TENANT_COLUMNS,
  type TenantRow,
  UPSERT_SETTING,
  USER_COLUMNS,
  type UserRow,
  toApiKey,
  toRole,
  toTenant,
  toUser,
} from "./sql-model.js";
import { revokeUserSessions } from "./sql-sessions.js";
import type { Change, SqlRunner } from "./sql-transactions.js";
import { type Actor, type ChangeFeed, type Committed, type PolicyWriter, StoreError } from "./store.js";

/** Inserts bindings in one statement, keeping any that already exist. */
export async function insertBindings(tx: SqlSession, bindings: readonly BindingRecord[]): Promise<void> {
  await tx.query(
    `INSERT INTO role_bindings (tenant, user_id, role)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING`,
    [bindings.map((b) => b.tenant), bindings.map((b) => b.userId), bindings.map((b) => b.role)],
  );
}

/** Inserts one user with its password hash ("" for users who cannot log in with a password). */
export async function insertUser(tx: SqlSession, user: UserRecord, passwordHash: string): Promise<UserRecord> {
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
  return toUser(rows[0]);
}

/** The messages for the unique keys of `users`, naming what `user` collided on. */
export function userConstraintMessages(user: UserRecord): ConstraintMessages {
  return {
    users_pkey: `user id "${user.id}" already exists`,
    users_username_key: `username "${user.username}" is already taken`,
    users_username_lower_key: `username "${user.username}" is already taken (usernames that differ only by case are the same name)`,
    users_external_identity_key: `external identity "${user.externalSubject}" of issuer "${user.externalIssuer}" is already linked to a user`,
  };
}

/** Creates the policy writer over `run`; `feed` answers the version of a write that changes nothing. */
export function createSqlPolicyWriter(run: SqlRunner, feed: Pick<ChangeFeed, "currentVersion">): PolicyWriter {
  const { db } = run;
  return {
    // tenants

    createTenant(tenant: TenantRecord, actor: Actor): Promise<Committed<TenantRecord>> {
      return run.mutate(
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
    },

    setTenantDisabled(id: string, disabled: boolean, actor: Actor): Promise<Committed> {
      return run.updateOne(actor, "tenant", "tenant", id, "UPDATE tenants SET disabled = $2 WHERE id = $1 RETURNING id", [disabled]);
    },

    deleteTenant(id: string, actor: Actor): Promise<Committed> {
      return run.mutate(actor, async (tx) => {
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
    },

    // users

    createUser(user: UserRecord, passwordHash: string, actor: Actor): Promise<Committed<UserRecord>> {
      return run.mutate(
        actor,
        async (tx) => ({ value: await insertUser(tx, user, passwordHash), changes: [{ kind: "user", id: user.id }] }),
        userConstraintMessages(user),
      );
    },

    setUserDisabled(id: string, disabled: boolean, actor: Actor): Promise<Committed> {
      return run.mutate(actor, async (tx) => {
        const { rows } = await tx.query("UPDATE users SET disabled = $2 WHERE id = $1 RETURNING id", [id, disabled]);
        if (!rows.length) throw new StoreError("not_found", `user "${id}" not found`);
        const sessions = disabled ? await revokeUserSessions(tx, id, "user_disabled") : [];
        return { value: undefined, changes: [{ kind: "user", id }, ...sessions] };
      });
    },

    deleteUser(id: string, actor: Actor): Promise<Committed> {
      return run.mutate(actor, async (tx) => {
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
    },

    setPassword(id: string, passwordHash: string, actor: Actor, keepSessionId?: string): Promise<Committed> {
      return run.mutate(actor, async (tx) => {
        const { rows } = await tx.query("UPDATE users SET password_hash = $2 WHERE id = $1 RETURNING id", [id, passwordHash]);
        if (!rows.length) throw new StoreError("not_found", `user "${id}" not found`);
        const sessions = await revokeUserSessions(tx, id, "password_changed", keepSessionId);
        return { value: undefined, changes: [{ kind: "user", id }, ...sessions] };
      });
    },

    // roles and bindings

    putRole(role: RoleRecord, actor: Actor): Promise<Committed<RoleRecord>> {
      return run.mutate(actor, async (tx) => {
        const { rows } = await tx.query<RoleRow>(
          `INSERT INTO roles (name, permissions, description, builtin) VALUES ($1, $2, $3, $4)
           ON CONFLICT (name) DO UPDATE SET permissions = EXCLUDED.permissions,
             description = EXCLUDED.description, builtin = EXCLUDED.builtin
           RETURNING ${ROLE_COLUMNS}`,
          [role.name, [...role.permissions], role.description, role.builtin],
        );
        return { value: toRole(rows[0]), changes: [{ kind: "role", id: role.name }] };
      }, { roles_name_lower_key: `role "${role.name}" differs from an existing role only by case` });
    },

    deleteRole(name: string, actor: Actor): Promise<Committed> {
      return run.mutate(actor, async (tx) => {
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
    },

    async bindRoles(bindings: readonly BindingRecord[], actor: Actor): Promise<Committed> {
      if (bindings.length === 0) return { version: await feed.currentVersion(), value: undefined };
      const tenants = [...new Set(bindings.map((b) => b.tenant).filter((t) => t !== ALL_TENANTS))];
      const missingUser = bindings.map((b) => b.userId).join(", ");
      const missingRole = bindings.map((b) => b.role).join(", ");
      return run.mutate(
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
    },

    unbindRoles(bindings: readonly BindingRecord[], actor: Actor): Promise<Committed> {
      return run.mutate(actor, async (tx) => {
        const { rows } = await tx.query<{ user_id: string }>(
          `DELETE FROM role_bindings b USING unnest($1::text[], $2::text[], $3::text[]) AS x(tenant, user_id, role)
           WHERE b.tenant = x.tenant AND b.user_id = x.user_id AND b.role = x.role RETURNING b.user_id`,
          [bindings.map((b) => b.tenant), bindings.map((b) => b.userId), bindings.map((b) => b.role)],
        );
        if (!rows.length) throw new StoreError("not_found", "none of the bindings exist");
        return { value: undefined, changes: rows.map((row) => ({ kind: "binding" as const, id: row.user_id })) };
      });
    },

    // API keys

    createApiKey(key: ApiKeyRecord, actor: Actor): Promise<Committed<ApiKeyRecord>> {
      return run.mutate(
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
    },

    revokeApiKey(id: string, revokedAtMs: number, actor: Actor): Promise<Committed> {
      return run.updateOne(
        actor,
        "api_key",
        "API key",
        id,
        "UPDATE api_keys SET revoked_at = CASE WHEN revoked_at = 0 THEN $2 ELSE revoked_at END WHERE id = $1 RETURNING id",
        [revokedAtMs],
      );
    },

    rotateApiKey(id: string, secretHash: string, actor: Actor): Promise<Committed<ApiKeyRecord>> {
      return run.mutate(
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
    },

    async recordKeyUse(uses: ReadonlyMap<string, number>): Promise<void> {
      if (uses.size === 0) return;
      await run.unversioned(() =>
        db.query(
          `UPDATE api_keys k SET last_used_at = u.at FROM unnest($1::text[], $2::bigint[]) AS u(id, at)
           WHERE k.id = u.id AND u.at > k.last_used_at`,
          [[...uses.keys()], [...uses.values()].map((ms) => Math.trunc(ms))],
        ),
      );
    },

    // settings

    getSetting(name: string): Promise<string | undefined> {
      return run.unversioned(async () => {
        const { rows } = await db.query<{ value: string }>("SELECT value FROM settings WHERE name = $1", [name]);
        return rows.length ? rows[0].value : undefined;
      });
    },

    async setSetting(name: string, value: string): Promise<void> {
      await run.unversioned(() => db.query(UPSERT_SETTING, [name, value]));
    },
  };
}
