/**
 * The embedded database's own thread: PGlite runs here, in a worker_threads Worker, and the driver
 * in pglite.ts talks to it by messages. Kept off the main thread because PGlite's WebAssembly
 * memory and file buffers (several hundred MiB outside the JavaScript heap) made the main isolate's
 * garbage collector promote and mark-compact far more often under Check load (bench/RESULTS.md),
 * and because its queries (version poll, key last-use writes, catch-up reads) ran on the event loop
 * that answers Check.
 */
import { parentPort, workerData } from "node:worker_threads";
import { PGlite, type Transaction } from "@electric-sql/pglite";
import type { ThreadReply, ThreadRequest, ThreadSettings } from "./pglite-protocol.js";

/**
 * Postgres settings sized for one embedded connection instead of a server's defaults
 * (shared_buffers 128MB, max_connections 100): Verdict's tables are small and PGlite has a single
 * connection. With the defaults PGlite alone held about 300 MB of RSS idle; with these about 170 MB.
 */
const START_PARAMS = [...PGlite.defaultStartParams, "-c", "shared_buffers=16MB", "-c", "max_connections=4", "-c", "wal_buffers=1MB", "-c", "work_mem=1MB"];

const port = parentPort!;
const settings = workerData as ThreadSettings;
const db = new PGlite(settings.dataDir, { startParams: START_PARAMS });
const ready = settings.searchPath === undefined ? db.waitReady : db.exec(`SET search_path TO ${settings.searchPath}`).then(() => {});
ready.catch(() => {});
if (settings.initializeOnly) {
  // Creating the directory's database is the whole job: the thread ends, and its memory with it.
  await db.waitReady;
  await db.close();
  port.close();
}

/** Open transactions by id: the session, and how to end it (commit or not, and the id to answer). */
const open = new Map<number, { tx: Transaction; end: (commit: boolean, replyId: number) => void }>();
const ROLLBACK = Symbol("rollback");

const reply = (message: ThreadReply) => port.postMessage(message);
const failure = (id: number, error: unknown): ThreadReply => {
  const e = error as Record<string, unknown>;
  const fields: Record<string, string> = {};
  for (const name of ["code", "constraint", "detail", "severity", "table", "column", "schema"]) {
    if (typeof e?.[name] === "string") fields[name] = e[name];
  }
  return { id, ok: false, message: error instanceof Error ? error.message : String(error), fields };
};

const session = (txId: number | undefined): PGlite | Transaction => {
  if (txId === undefined) return db;
  const t = open.get(txId);
  if (!t) throw new Error(`transaction ${txId} is not open`);
  return t.tx;
};

/** Opens a transaction: answers "begin" once it holds the connection, and "end" once it committed or rolled back. */
function begin(request: Extract<ThreadRequest, { op: "begin" }>): void {
  let endId = request.id;
  db.transaction(async (tx) => {
    if (request.snapshot) await tx.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    const commit = await new Promise<boolean>((resolve) => {
      open.set(request.tx, {
        tx,
        end: (c, id) => {
          endId = id;
          resolve(c);
        },
      });
      reply({ id: request.id, ok: true });
    });
    if (!commit) throw ROLLBACK;
  })
    .then(
      () => reply({ id: endId, ok: true }),
      (error: unknown) => reply(error === ROLLBACK ? { id: endId, ok: true } : failure(endId, error)),
    )
    .finally(() => open.delete(request.tx));
}

port.on("message", (request: ThreadRequest) => {
  void (async () => {
    try {
      await ready;
      switch (request.op) {
        case "query": {
          const result = await session(request.tx).query(request.text, request.params as unknown[] | undefined);
          reply({ id: request.id, ok: true, rows: result.rows });
          return;
        }
        case "exec":
          await session(request.tx).exec(request.text);
          reply({ id: request.id, ok: true });
          return;
        case "begin":
          begin(request);
          return;
        case "end": {
          const t = open.get(request.tx);
          if (!t) throw new Error(`transaction ${request.tx} is not open`);
          t.end(request.commit, request.id);
          return;
        }
        case "close":
          if (!db.closed) await db.close();
          reply({ id: request.id, ok: true });
          return;
      }
    } catch (error) {
      reply(failure(request.id, error));
    }
  })();
});
