/**
 * The SQL driver contract: what a database driver (Postgres via pg, embedded PGlite) provides to
 * the shared SQL store and to the migrations. Drivers and migrations import this file, never the
 * store implementation.
 */

/** Rows returned by one statement. */
export interface SqlResult<R> {
  readonly rows: R[];
}

/** Something that runs SQL: a connection, a pool or an open transaction. */
export interface SqlSession {
  /** Runs one statement with positional parameters ($1, $2, ...). */
  query<R = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<SqlResult<R>>;
  /** Runs one or more statements without parameters. */
  exec(text: string): Promise<void>;
}

/** How a transaction runs. */
export interface TransactionOptions {
  /** Read-only at REPEATABLE READ: every statement sees the same snapshot. */
  readonly snapshot?: boolean;
}

/** What a database driver provides to the shared SQL store. */
export interface SqlDriver extends SqlSession {
  /** "postgres" or "pglite". */
  readonly name: string;
  /** Schema the driver's search_path points at, created by migrate() when set. */
  readonly schema: string | undefined;
  /**
   * Runs `fn` in one transaction: commits when it resolves, rolls back and rethrows when it
   * rejects. Queries on `tx` never interleave with another transaction's on the same connection.
   */
  transaction<T>(fn: (tx: SqlSession) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /** Releases the connection(s); safe to call twice. */
  close(): Promise<void>;
}
