/**
 * The one SQL implementation of Store, shared by the Postgres and PGlite drivers. A driver only
 * supplies queries and transactions (sql-driver.ts); the store is assembled from one part per
 * capability, each in its own file, all running their SQL through one SqlRunner:
 *
 * - sql-policy-reader.ts: PolicyReader (snapshots, single entities, lists)
 * - sql-policy-writer.ts: PolicyWriter (tenants, users, roles, bindings, API keys, settings)
 * - sql-change-feed.ts:   ChangeFeed and trimChangeLog
 * - sql-sessions.ts:      SessionStore (sessions, refresh tokens)
 * - sql-token-keys.ts:    TokenKeyStore (signing keys, external users)
 * - sql-identity-store.ts: IdentityStore (linked identities, their sessions, pending sign-ins)
 * - sql-rate-limits.ts:   RateLimitStore (limits per API key, role and tenant)
 *
 * sql-model.ts holds the rows, columns and mappers, sql-errors.ts the error translation,
 * sql-transactions.ts the versioned transaction every policy write runs in.
 */
import { applyMigrations } from "./migrations.js";
import { type SqlChangeFeed, createSqlChangeFeed } from "./sql-change-feed.js";
import type { SqlDriver } from "./sql-driver.js";
import { createSqlIdentityStore } from "./sql-identity-store.js";
import { createSqlPolicyReader } from "./sql-policy-reader.js";
import { createSqlPolicyWriter } from "./sql-policy-writer.js";
import { createSqlRateLimitStore } from "./sql-rate-limits.js";
import { createSqlSessionStore } from "./sql-sessions.js";
import { createSqlTokenKeyStore } from "./sql-token-keys.js";
import { createSqlRunner } from "./sql-transactions.js";
import type { Store } from "./store.js";

/** A SQL-backed Store, with an operations method to bound the change log (see SqlChangeFeed). */
export interface SqlStore extends Store, SqlChangeFeed {}

/**
 * Creates the Store over a driver. The store owns the driver: close() closes it. Call migrate()
 * before anything else on a new database.
 */
export function createSqlStore(db: SqlDriver): SqlStore {
  const run = createSqlRunner(db);
  const feed = createSqlChangeFeed(run);
  return {
    driver: db.name,
    async migrate(): Promise<void> {
      await run.unversioned(() => db.transaction((tx) => applyMigrations(tx, db.schema)));
    },
    async ping(): Promise<void> {
      await run.unversioned(() => db.query("SELECT 1"));
    },
    close(): Promise<void> {
      return db.close();
    },
    ...feed,
    ...createSqlPolicyReader(run),
    ...createSqlPolicyWriter(run, feed),
    ...createSqlSessionStore(run),
    ...createSqlTokenKeyStore(run),
    identities: createSqlIdentityStore(run),
    ...createSqlRateLimitStore(run),
  };
}
