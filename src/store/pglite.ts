/**
 * The embedded driver: PGlite (Postgres compiled to WebAssembly) in a local directory or in memory,
 * behind the shared SQL store. PGlite runs in its own thread (pglite-thread.ts), so neither its
 * memory nor its queries weigh on the event loop that answers Check. PGlite has a single
 * connection; its transaction() holds it for the whole transaction, so transactions and single
 * queries are serialised. Once the thread stops (it failed, or was ended), every request waiting
 * for it and every later one fails with StoreError("unavailable").
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import type { ThreadReply, ThreadRequest, ThreadSettings } from "./pglite-protocol.js";
import { prepareDataDir } from "./data-dir.js";
import { quoteSchemaName } from "./migrations.js";
import type { SqlDriver, SqlResult, SqlSession, TransactionOptions } from "./sql-driver.js";
import { type SqlStore, createSqlStore } from "./sql-store.js";
import { StoreError } from "./store.js";

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** Where PGlite keeps its data. */
export interface PgliteStoreOptions {
  /**
   * A directory, or "memory://" for a database that lives in memory only. The directory is created
   * 0700 when missing, tightened to 0700 when open to others, refused when it belongs to another
   * user (data-dir.ts): createPgliteDriver throws then.
   */
  readonly dataDir: string;
  /** Told (with a message naming the directory) when the directory's mode was tightened. */
  readonly onTightened?: (message: string) => void;
  /** Schema holding Verdict's tables, created by migrate() and set as the search_path. */
  readonly schema?: string;
}

/** The thread's compiled module: next to this one, or under dist/ when this one runs from TypeScript sources (tests build dist/ first). */
function threadUrl(): URL {
  return import.meta.url.endsWith(".ts") ? new URL("../../dist/src/store/pglite-thread.js", import.meta.url) : new URL("./pglite-thread.js", import.meta.url);
}

/** A failure reported by the thread, with the Postgres error fields the SQL store translates (code, constraint, ...). */
function threadError(reply: Extract<ThreadReply, { ok: false }>): Error {
  return Object.assign(new Error(reply.message), reply.fields);
}

/**
 * Creates a new data directory in a thread of its own that then ends. PGlite's initdb runs a second
 * WebAssembly Postgres and dumps its files (about 800 MB at peak); that memory stays resident in the
 * thread that ran it, and is released when that thread ends.
 */
function initializeDataDir(dataDir: string): Promise<void> {
  const settings: ThreadSettings = { dataDir, initializeOnly: true };
  return new Promise((resolve, reject) => {
    const worker = new Worker(threadUrl(), { workerData: settings });
    worker.once("error", reject);
    worker.once("exit", (code) => (existsSync(join(dataDir, "PG_VERSION")) ? resolve() : reject(new Error(`initializing the embedded database in ${dataDir} failed (worker exit ${code})`))));
  });
}

/** Starts the thread serving the database, first creating a directory's database when there is none. */
async function startThread(settings: ThreadSettings): Promise<Worker> {
  if (!settings.dataDir.includes("://") && !existsSync(join(settings.dataDir, "PG_VERSION"))) await initializeDataDir(settings.dataDir);
  return new Worker(threadUrl(), { workerData: settings });
}

/** The PGlite driver, with the thread it talks to. */
export interface PgliteDriver extends SqlDriver {
  /** The thread serving the database; rejects when it could not be started. */
  readonly thread: Promise<Worker>;
}

/** Creates the driver for createSqlStore; createPgliteStore does both. */
export function createPgliteDriver(options: PgliteStoreOptions): PgliteDriver {
  if (!options.dataDir.includes("://")) prepareDataDir(options.dataDir, options.onTightened);
  const searchPath = options.schema === undefined ? undefined : quoteSchemaName(options.schema);
  const pending = new Map<number, { resolve: (reply: ThreadReply) => void; reject: (error: Error) => void }>();
  let lastId = 0;
  let lastTx = 0;
  let closed = false;
  /** Set once the thread has stopped or failed: every request waiting and every later one gets it. */
  let stopped: StoreError | undefined;
  const stop = (error: StoreError) => {
    stopped ??= error;
    for (const p of pending.values()) p.reject(stopped);
    pending.clear();
  };
  const started = startThread({ dataDir: options.dataDir, searchPath }).then((thread) => {
    // The thread keeps the process alive only while a request waits for it.
    thread.unref();
    thread.on("message", (reply: ThreadReply) => {
      const p = pending.get(reply.id);
      if (!p) return;
      pending.delete(reply.id);
      if (pending.size === 0) thread.unref();
      p.resolve(reply);
    });
    thread.on("error", (error) => stop(new StoreError("unavailable", `the embedded database (PGlite) has stopped: its thread failed: ${error.message}`, { cause: error })));
    thread.on("exit", (code) => stop(new StoreError("unavailable", `the embedded database (PGlite) has stopped: its thread exited (code ${code})`)));
    return thread;
  });
  // Start-up failures surface on the first statement; this only keeps them from being unhandled meanwhile.
  started.catch(() => {});

  const ask = async (request: DistributiveOmit<ThreadRequest, "id">): Promise<ThreadReply> => {
    if (closed && request.op !== "close") throw new Error("PGlite is closed");
    const thread = await started;
    // A message to a thread that has exited is dropped, and its reply would never come.
    if (stopped) throw stopped;
    return new Promise((resolve, reject) => {
      const id = ++lastId;
      pending.set(id, { resolve, reject });
      thread.ref();
      thread.postMessage({ ...request, id });
    });
  };
  const run = async (request: DistributiveOmit<ThreadRequest, "id">): Promise<unknown[]> => {
    const reply = await ask(request);
    if (!reply.ok) throw threadError(reply);
    return reply.rows ?? [];
  };
  const session = (tx?: number): SqlSession => ({
    async query<R>(text: string, params?: readonly unknown[]): Promise<SqlResult<R>> {
      return { rows: (await run({ op: "query", text, params, tx })) as R[] };
    },
    async exec(text: string): Promise<void> {
      await run({ op: "exec", text, tx });
    },
  });
  const direct = session();
  return {
    name: "pglite",
    schema: options.schema,
    thread: started,
    query: direct.query,
    exec: direct.exec,
    async transaction<T>(fn: (tx: SqlSession) => Promise<T>, txOptions?: TransactionOptions): Promise<T> {
      const tx = ++lastTx;
      await run({ op: "begin", tx, snapshot: txOptions?.snapshot === true });
      let result: T;
      try {
        result = await fn(session(tx));
      } catch (error) {
        // The transaction's own failure is the one to report, not a failed rollback after it.
        await run({ op: "end", tx, commit: false }).catch(() => {});
        throw error;
      }
      await run({ op: "end", tx, commit: true });
      return result;
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      const thread = await started.catch(() => undefined);
      if (!thread) return;
      await run({ op: "close" }).catch(() => {});
      await thread.terminate();
    },
  };
}

/**
 * Opens a store on PGlite. The database starts in the background (a new directory is created in a
 * thread of its own first); call migrate() before use.
 */
export function createPgliteStore(options: PgliteStoreOptions): SqlStore {
  return createSqlStore(createPgliteDriver(options));
}
