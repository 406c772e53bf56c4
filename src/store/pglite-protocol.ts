/**
 * The messages between the PGlite driver (pglite.ts, main thread) and the thread running PGlite
 * (pglite-thread.ts).
 */

/** What the thread is started with. */
export interface ThreadSettings {
  /** A directory, or "memory://". */
  readonly dataDir: string;
  /** A quoted schema name to set as the session's search_path, if any. */
  readonly searchPath?: string;
  /** Only create the directory's database, close it and end (see initializeDataDir in pglite.ts). */
  readonly initializeOnly?: boolean;
}

/** A request to the thread; `id` pairs it with its reply, `tx` names an open transaction. */
export type ThreadRequest =
  | { readonly id: number; readonly op: "query"; readonly text: string; readonly params?: readonly unknown[]; readonly tx?: number }
  | { readonly id: number; readonly op: "exec"; readonly text: string; readonly tx?: number }
  | { readonly id: number; readonly op: "begin"; readonly tx: number; readonly snapshot: boolean }
  | { readonly id: number; readonly op: "end"; readonly tx: number; readonly commit: boolean }
  | { readonly id: number; readonly op: "close" };

/** The thread's answer: rows for a query; for a failure the message and the Postgres error fields (code, constraint, ...). */
export type ThreadReply =
  | { readonly id: number; readonly ok: true; readonly rows?: unknown[] }
  | { readonly id: number; readonly ok: false; readonly message: string; readonly fields: Readonly<Record<string, string>> };
