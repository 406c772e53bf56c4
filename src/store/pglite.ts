/**
 * The embedded driver: PGlite (Postgres compiled to WebAssembly) in a local directory or in memory,
 * behind the shared SQL store. PGlite has a single connection; its transaction() holds it for the
 * whole transaction, so transactions and single queries are serialised.
 */
import { mkdirSync } from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import type { Transaction } from "@electric-sql/pglite";
import { quoteSchemaName } from "./migrations.js";
import type { SqlDriver, SqlResult, SqlSession, TransactionOptions } from "./sql-driver.js";
import { type SqlStore, createSqlStore } from "./sql-store.js";

/** Where PGlite keeps its data. */
export interface PgliteStoreOptions {
  /** A directory (created if missing), or "memory://" for a database that lives in memory only. */
  readonly dataDir: string;
  /** Schema holding Verdict's tables, created by migrate() and set as the search_path. */
  readonly schema?: string;
}

function session(target: PGlite | Transaction): SqlSession {
  return {
    async query<R>(text: string, params?: readonly unknown[]): Promise<SqlResult<R>> {
      const result = await target.query<R>(text, params as unknown[] | undefined);
      return { rows: result.rows };
    },
    async exec(text: string): Promise<void> {
      await target.exec(text);
    },
  };
}

function createPgliteDriver(options: PgliteStoreOptions): SqlDriver {
  if (!options.dataDir.includes("://")) mkdirSync(options.dataDir, { recursive: true });
  const db = new PGlite(options.dataDir);
  const searchPath = options.schema === undefined ? undefined : quoteSchemaName(options.schema);
  // The session-level search_path is set once, before any other statement runs.
  const ready = searchPath === undefined ? db.waitReady : db.exec(`SET search_path TO ${searchPath}`).then(() => {});
  // Start-up failures surface on the first statement; this only keeps them from being unhandled meanwhile.
  ready.catch(() => {});
  const direct = session(db);
  return {
    name: "pglite",
    schema: options.schema,
    async query<R>(text: string, params?: readonly unknown[]): Promise<SqlResult<R>> {
      await ready;
      return direct.query<R>(text, params);
    },
    async exec(text: string): Promise<void> {
      await ready;
      await direct.exec(text);
    },
    async transaction<T>(fn: (tx: SqlSession) => Promise<T>, txOptions?: TransactionOptions): Promise<T> {
      await ready;
      return db.transaction(async (tx) => {
        if (txOptions?.snapshot) await tx.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
        return fn(session(tx));
      });
    },
    async close(): Promise<void> {
      if (db.closed) return;
      await ready.catch(() => {});
      await db.close();
    },
  };
}

/** Opens a store on PGlite. The database starts in the background (3 to 5 s); call migrate() before use. */
export function createPgliteStore(options: PgliteStoreOptions): SqlStore {
  return createSqlStore(createPgliteDriver(options));
}
