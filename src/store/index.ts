/**
 * Opens the configured store: Postgres when a database URL is given, embedded PGlite otherwise.
 * Only the chosen driver is loaded (pg on the embedded default, PGlite with Postgres, would only
 * cost start-up time and memory).
 */
import type { SqlStore } from "./sql-store.js";

/** Where the policy lives. */
export interface OpenStoreOptions {
  /** postgres:// URL; when unset or empty the embedded PGlite store is used. */
  readonly databaseUrl?: string;
  /**
   * PGlite data directory ("memory://" for in memory); ignored when databaseUrl is set. Kept 0700;
   * one of another user's is refused (openStore rejects).
   */
  readonly dataDir: string;
  /** Told (with a message naming it) when the data directory was open to others and is now 0700. */
  readonly onDataDirTightened?: (message: string) => void;
  /** Schema holding Verdict's tables (created by migrate() if missing). */
  readonly schema?: string;
}

/**
 * Opens the Postgres store when `databaseUrl` is set, the PGlite store otherwise (loading only that
 * driver). Connects lazily:
 * an unreachable database fails the first call (migrate() or ping()) as StoreError("unavailable"),
 * so a replica can start its servers and retry. Call migrate() before anything else.
 */
export async function openStore(options: OpenStoreOptions): Promise<SqlStore> {
  if (options.databaseUrl) {
    const { createPostgresStore } = await import("./postgres.js");
    return createPostgresStore({ connectionString: options.databaseUrl, schema: options.schema });
  }
  const { createPgliteStore } = await import("./pglite.js");
  return createPgliteStore({ dataDir: options.dataDir, schema: options.schema, onTightened: options.onDataDirTightened });
}
