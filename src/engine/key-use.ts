/**
 * Records API key last use off the hot path: Check only sets a map entry; a timer writes the
 * batch. The pending map is bounded and every dropped record is counted.
 *
 * A batch is written in statements of at most STATEMENT_KEYS keys, one after the other: building
 * one statement's parameters (the key ids and times as arrays, encoded as text by the Postgres
 * driver or copied to the embedded database's thread) runs on the event loop, and for 100,000 keys
 * used in one interval that took 140 to 320 ms in one piece, a stall of every Check. Each
 * statement's share is a few milliseconds, and Checks run while the previous one is in flight.
 */
import { createBoundedBatch } from "../observability/bounded-batch.js";

/** Collects last-use times and writes them in batches. */
export interface KeyUseRecorder {
  /** Notes that key `id` was used at `atMs`. O(1), no I/O. */
  record(id: string, atMs: number): void;
  /** Writes what is pending now. */
  flush(): Promise<void>;
  /** Stops the timer and flushes. */
  close(): Promise<void>;
}

/** Settings of the recorder. */
export interface KeyUseOptions {
  readonly flushIntervalMs: number;
  /** Most keys pending; a newer use of a pending key replaces it and is never dropped. */
  readonly maxPending: number;
  readonly write: (uses: ReadonlyMap<string, number>) => Promise<void>;
  readonly onDropped: () => void;
  readonly onFlushFailed: (error: unknown) => void;
  /** Most keys one statement writes (default STATEMENT_KEYS; bench/key-use compares). */
  readonly statementKeys?: number;
}

/** Most keys written by one statement. */
const STATEMENT_KEYS = 2000;

/** Writes `uses` in statements of at most statementKeys keys, in turn; a failed one is reported and the rest still written. */
async function writeInStatements(uses: Map<string, number>, options: KeyUseOptions): Promise<void> {
  const most = options.statementKeys ?? STATEMENT_KEYS;
  if (uses.size <= most) return options.write(uses).catch(options.onFlushFailed);
  let part = new Map<string, number>();
  for (const [id, atMs] of uses) {
    part.set(id, atMs);
    if (part.size === most) {
      await options.write(part).catch(options.onFlushFailed);
      part = new Map();
    }
  }
  if (part.size > 0) await options.write(part).catch(options.onFlushFailed);
}

/** Creates a recorder that flushes every `flushIntervalMs`. */
export function createKeyUseRecorder(options: KeyUseOptions): KeyUseRecorder {
  const batch = createBoundedBatch<Map<string, number>>({
    flushIntervalMs: options.flushIntervalMs,
    maxPending: options.maxPending,
    empty: () => new Map(),
    size: (uses) => uses.size,
    holds: (uses, id) => uses.has(id),
    write: (uses) => writeInStatements(uses, options),
    onDropped: options.onDropped,
  });
  return {
    record(id, atMs) {
      batch.room(id)?.set(id, atMs);
    },
    flush: batch.flush,
    close: batch.close,
  };
}
