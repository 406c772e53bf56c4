/**
 * Opens the configured store: Postgres when a database URL is given, embedded PGlite otherwise.
 */
import { createPgliteStore } from "./pglite.js";
import { createPostgresStore } from "./postgres.js";
import type { SqlStore } from "./sql-store.js";

export type { SqlStore } from "./sql-store.js";
export { StoreError } from "./store.js";
export type { Actor, ChangeEntry, ChangeFeed, Committed, EntityKind, PolicyReader, PolicyWriter, Store, UserCredentials } from "./store.js";

/** Where the policy lives. */
export interface OpenStoreOptions {
  /** postgres:// URL; when unset or empty the embedded PGlite store is used. */
  readonly databaseUrl?: string;
  /** PGlite data directory ("memory://" for in memory); ignored when databaseUrl is set. */
  readonly dataDir: string;
  /** Schema holding Verdict's tables (created by migrate() if missing). */
  readonly schema?: string;
}

/**
 * Opens the store and checks that the database answers, so a bad URL fails at start as a
 * StoreError("unavailable"). Does not migrate: call migrate() next.
 */
export async function openStore(options: OpenStoreOptions): Promise<SqlStore> {
  const store = options.databaseUrl
    ? createPostgresStore({ connectionString: options.databaseUrl, schema: options.schema })
    : createPgliteStore({ dataDir: options.dataDir, schema: options.schema });
  try {
    await store.ping();
  } catch (err) {
    await store.close().catch(() => {});
    throw err;
  }
  return store;
}
