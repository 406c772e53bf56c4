/**
 * Records API key last use off the hot path: Check only sets a map entry; a timer writes the
 * batch in one statement. The pending map is bounded and every dropped record is counted.
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
}

/** Creates a recorder that flushes every `flushIntervalMs`. */
export function createKeyUseRecorder(options: KeyUseOptions): KeyUseRecorder {
  const batch = createBoundedBatch<Map<string, number>>({
    flushIntervalMs: options.flushIntervalMs,
    maxPending: options.maxPending,
    empty: () => new Map(),
    size: (uses) => uses.size,
    holds: (uses, id) => uses.has(id),
    write: (uses) => options.write(uses).catch(options.onFlushFailed),
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
