/**
 * The Postgres driver: a pg.Pool behind the shared SQL store, optionally confined to one schema.
 */
import pg from "pg";
import { quoteSchemaName } from "./migrations.js";
import type { SqlDriver, SqlResult, SqlSession, SqlStore, TransactionOptions } from "./sql-store.js";
import { createSqlStore } from "./sql-store.js";

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
    options: options.schema === undefined ? undefined : `-c search_path=${quoteSchemaName(options.schema)}`,
  });
  // An idle client losing its connection must not crash the process; the next query reports it.
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
