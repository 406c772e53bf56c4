/**
 * The Postgres driver: a pg.Pool behind the shared SQL store, optionally confined to one schema.
 */
import pg from "pg";
import { quoteSchemaName } from "./migrations.js";
import type { SqlDriver, SqlResult, SqlSession, TransactionOptions } from "./sql-driver.js";
import { type SqlStore, createSqlStore } from "./sql-store.js";

/** Where and how to connect to Postgres. */
export interface PostgresStoreOptions {
  /** A postgres:// URL. */
  readonly connectionString: string;
  /**
   * Schema holding Verdict's tables: created by migrate() if missing and put first on every
   * connection's search_path. Lower-case letters, digits and _ only. Defaults to the server's
   * search_path (normally "public").
   */
  readonly schema?: string;
  /** Pool size (default 10). */
  readonly maxConnections?: number;
  /** How long to wait for a connection before failing as unavailable (default 5000 ms). */
  readonly connectTimeoutMs?: number;
  /**
   * How long one query may wait for its answer before failing as unavailable (default 60000 ms):
   * a server that stops answering without closing the connection must not hang callers forever.
   * Generous, because a cold load of a million keys is one long query.
   */
  readonly queryTimeoutMs?: number;
}

function session(client: pg.Pool | pg.PoolClient): SqlSession {
  return {
    async query<R>(text: string, params?: readonly unknown[]): Promise<SqlResult<R>> {
      const result = await client.query(text, params as unknown[] | undefined);
      return { rows: result.rows as R[] };
    },
    async exec(text: string): Promise<void> {
      await client.query(text);
    },
  };
}

function createPostgresDriver(options: PostgresStoreOptions): SqlDriver {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.maxConnections ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    query_timeout: options.queryTimeoutMs ?? 60_000,
    keepAlive: true,
    options: options.schema === undefined ? undefined : `-c search_path=${quoteSchemaName(options.schema)}`,
  });
  // An idle client losing its connection must not crash the process: the pool drops it and the
  // next query opens a fresh connection, so the store recovers by itself when Postgres returns.
  pool.on("error", () => {});
  let closed = false;
  const pooled = session(pool);
  return {
    name: "postgres",
    schema: options.schema,
    query: pooled.query,
    exec: pooled.exec,
    async transaction<T>(fn: (tx: SqlSession) => Promise<T>, txOptions?: TransactionOptions): Promise<T> {
      const client = await pool.connect();
      let broken: Error | undefined;
      try {
        await client.query(txOptions?.snapshot ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN");
        const result = await fn(session(client));
        await client.query("COMMIT");
        return result;
      } catch (err) {
        await client.query("ROLLBACK").catch((rollbackErr: Error) => {
          broken = rollbackErr;
        });
        throw err;
      } finally {
        client.release(broken);
      }
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}

/** Opens a store on Postgres. Connections are made lazily; call migrate() before use. */
export function createPostgresStore(options: PostgresStoreOptions): SqlStore {
  return createSqlStore(createPostgresDriver(options));
}
