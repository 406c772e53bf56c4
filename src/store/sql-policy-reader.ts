/**
 * The SQL policy reader: whole snapshots at one consistent version, and single entities and lists
 * for the admin API and for applying changes.
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
import {
  API_KEY_COLUMNS,
  API_KEY_GRANT_COLUMNS,
  type ApiKeyGrantRow,
  type ApiKeyRow,
  BINDING_COLUMNS,
  type BindingRow,
  ROLE_COLUMNS,
  type RoleRow,
  TENANT_COLUMNS,
  type TenantRow,
  USER_COLUMNS,
  type UserRow,
  toApiKey,
  toApiKeyGrant,
  toBinding,
  toNumber,
  toRole,
  toTenant,
  toUser,
} from "./sql-model.js";
import type { SqlRunner } from "./sql-transactions.js";
import type { PolicyReader, UserCredentials } from "./store.js";

/** API keys read per query while loading a snapshot. */
const SNAPSHOT_PAGE = 20_000;

/** Creates the policy reader over `run`. */
export function createSqlPolicyReader(run: SqlRunner): PolicyReader {
  const { db } = run;
  return {
    loadSnapshot(): Promise<PolicyData> {
      return run.unversioned(() =>
        db.transaction(
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
    },

    getTenant(id: string): Promise<TenantRecord | undefined> {
      return run.unversioned(async () => {
        const { rows } = await db.query<TenantRow>(`SELECT ${TENANT_COLUMNS} FROM tenants WHERE id = $1`, [id]);
        return rows.length ? toTenant(rows[0]) : undefined;
      });
    },

    getUser(id: string): Promise<UserRecord | undefined> {
      return run.unversioned(async () => {
        const { rows } = await db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1`, [id]);
        return rows.length ? toUser(rows[0]) : undefined;
      });
    },

    getUserByUsername(username: string): Promise<UserRecord | undefined> {
      return run.unversioned(async () => {
        const { rows } = await db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE username = $1`, [
          username,
        ]);
        return rows.length ? toUser(rows[0]) : undefined;
      });
    },

    getUserCredentials(username: string): Promise<UserCredentials | undefined> {
      return run.unversioned(async () => {
        const { rows } = await db.query<UserRow & { password_hash: string }>(
          `SELECT ${USER_COLUMNS}, password_hash FROM users WHERE username = $1`,
          [username],
        );
        return rows.length ? { user: toUser(rows[0]), passwordHash: rows[0].password_hash } : undefined;
      });
    },

    getRole(name: string): Promise<RoleRecord | undefined> {
      return run.unversioned(async () => {
        const { rows } = await db.query<RoleRow>(`SELECT ${ROLE_COLUMNS} FROM roles WHERE name = $1`, [name]);
        return rows.length ? toRole(rows[0]) : undefined;
      });
    },

    getBindingsForUser(userId: string): Promise<BindingRecord[]> {
      return run.unversioned(async () => {
        const { rows } = await db.query<BindingRow>(
          `SELECT ${BINDING_COLUMNS} FROM role_bindings WHERE user_id = $1 ORDER BY tenant, role`,
          [userId],
        );
        return rows.map(toBinding);
      });
    },

    getApiKey(id: string): Promise<ApiKeyRecord | undefined> {
      return run.unversioned(async () => {
        const { rows } = await db.query<ApiKeyRow>(`SELECT ${API_KEY_COLUMNS} FROM api_keys WHERE id = $1`, [id]);
        return rows.length ? toApiKey(rows[0]) : undefined;
      });
    },

    listTenants(): Promise<TenantRecord[]> {
      return run.unversioned(async () => {
        const { rows } = await db.query<TenantRow>(`SELECT ${TENANT_COLUMNS} FROM tenants ORDER BY id`);
        return rows.map(toTenant);
      });
    },

    listUsers(): Promise<UserRecord[]> {
      return run.unversioned(async () => {
        const { rows } = await db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users ORDER BY username`);
        return rows.map(toUser);
      });
    },

    listRoles(): Promise<RoleRecord[]> {
      return run.unversioned(async () => {
        const { rows } = await db.query<RoleRow>(`SELECT ${ROLE_COLUMNS} FROM roles ORDER BY name`);
        return rows.map(toRole);
      });
    },

    listBindings(tenant?: string): Promise<BindingRecord[]> {
      return run.unversioned(async () => {
        const { rows } =
          tenant === undefined
            ? await db.query<BindingRow>(
                `SELECT ${BINDING_COLUMNS} FROM role_bindings ORDER BY tenant, user_id, role`,
              )
            : await db.query<BindingRow>(
                `SELECT ${BINDING_COLUMNS} FROM role_bindings WHERE tenant = $1 ORDER BY user_id, role`,
                [tenant],
              );
        return rows.map(toBinding);
      });
    },

    listApiKeys(ownerUserId?: string): Promise<ApiKeyRecord[]> {
      return run.unversioned(async () => {
        const { rows } =
          ownerUserId === undefined
            ? await db.query<ApiKeyRow>(`SELECT ${API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id`)
            : await db.query<ApiKeyRow>(
                `SELECT ${API_KEY_COLUMNS} FROM api_keys WHERE owner_user_id = $1 ORDER BY created_at, id`,
                [ownerUserId],
              );
        return rows.map(toApiKey);
      });
    },

    countAdmins(role: string): Promise<number> {
      return run.unversioned(async () => {
        const { rows } = await db.query<{ count: string | number }>(
          `SELECT count(DISTINCT u.id) AS count FROM users u JOIN role_bindings b ON b.user_id = u.id
           WHERE b.tenant = $1 AND b.role = $2 AND NOT u.root AND NOT u.disabled`,
          [ALL_TENANTS, role],
        );
        return toNumber(rows[0].count);
      });
    },
  };
}
