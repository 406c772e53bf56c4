/**
 * The embedded driver: PGlite (Postgres compiled to WebAssembly) in a local directory or in memory,
 * behind the shared SQL store. PGlite has a single connection; its transaction() holds it for the
 * whole transaction, so transactions and single queries are serialised.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
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

/**
 * Postgres settings sized for one embedded connection instead of a server's defaults
 * (shared_buffers 128MB, max_connections 100): Verdict's tables are small and PGlite has a single
 * connection. With the defaults PGlite alone held about 300 MB of RSS idle; with these about 170 MB.
 */
const START_PARAMS = [...PGlite.defaultStartParams, "-c", "shared_buffers=16MB", "-c", "max_connections=4", "-c", "wal_buffers=1MB", "-c", "work_mem=1MB"];

/**
 * Creates a new data directory in a worker thread and closes it there. PGlite's initdb runs a second
 * WebAssembly Postgres and dumps its files (about 800 MB at peak); in this process that memory stayed
 * resident after start-up, while a worker's is released when the worker ends.
 */
function initializeDataDir(dataDir: string): Promise<void> {
  const code = `
    const { parentPort, workerData } = require("node:worker_threads");
    import(workerData.pglite).then(async ({ PGlite }) => {
      const db = new PGlite(workerData.dataDir, { startParams: workerData.startParams });
      await db.waitReady;
      await db.close();
      parentPort.postMessage("initialized");
    });`;
  return new Promise((resolve, reject) => {
    const worker = new Worker(code, { eval: true, workerData: { pglite: import.meta.resolve("@electric-sql/pglite"), dataDir, startParams: START_PARAMS } });
    worker.once("error", reject);
    worker.once("exit", (code) => (existsSync(join(dataDir, "PG_VERSION")) ? resolve() : reject(new Error(`initializing the embedded database in ${dataDir} failed (worker exit ${code})`))));
  });
}

/** Opens PGlite, first creating a directory's database in a worker when there is none. */
async function openPglite(dataDir: string): Promise<PGlite> {
  if (!dataDir.includes("://")) {
    mkdirSync(dataDir, { recursive: true });
    if (!existsSync(join(dataDir, "PG_VERSION"))) await initializeDataDir(dataDir);
  }
  const db = new PGlite(dataDir, { startParams: START_PARAMS });
  await db.waitReady;
  return db;
}

function createPgliteDriver(options: PgliteStoreOptions): SqlDriver {
  const searchPath = options.schema === undefined ? undefined : quoteSchemaName(options.schema);
  const opened = openPglite(options.dataDir);
  let db: PGlite | undefined;
  // The session-level search_path is set once, before any other statement runs.
  const ready = opened.then(async (pg) => {
    db = pg;
    if (searchPath !== undefined) await pg.exec(`SET search_path TO ${searchPath}`);
  });
  // Start-up failures surface on the first statement; this only keeps them from being unhandled meanwhile.
  ready.catch(() => {});
  const open = async (): Promise<PGlite> => {
    await ready;
    return db!;
  };
  return {
    name: "pglite",
    schema: options.schema,
    async query<R>(text: string, params?: readonly unknown[]): Promise<SqlResult<R>> {
      return session(await open()).query<R>(text, params);
    },
    async exec(text: string): Promise<void> {
      await session(await open()).exec(text);
    },
    async transaction<T>(fn: (tx: SqlSession) => Promise<T>, txOptions?: TransactionOptions): Promise<T> {
      return (await open()).transaction(async (tx) => {
        if (txOptions?.snapshot) await tx.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
        return fn(session(tx));
      });
    },
    async close(): Promise<void> {
      await ready.catch(() => {});
      if (db === undefined || db.closed) return;
      await db.close();
    },
  };
}

/**
 * Opens a store on PGlite. The database starts in the background (a new directory is created in a
 * worker first); call migrate() before use.
 */
export function createPgliteStore(options: PgliteStoreOptions): SqlStore {
  return createSqlStore(createPgliteDriver(options));
}
