/**
 * A bounded batch written off the hot path: callers add records to the pending batch (O(1), no
 * I/O, nothing allocated by the batch itself), a timer hands it to `write` and starts a fresh one.
 * When the batch is full a new record is dropped and counted. Writes never overlap: a flush during
 * a write waits for it. With `writeAt`, a batch that grows to that size is written at the next turn
 * of the event loop instead of waiting for the timer, so that under load each write stays small.
 * Used by the API key last-use recorder and the decision audit.
 */

/** Settings of createBoundedBatch. */
export interface BoundedBatchOptions<B> {
  /** How often the pending batch is written. */
  readonly flushIntervalMs: number;
  /** Most records a batch holds; beyond that new records are dropped. */
  readonly maxPending: number;
  /** A batch that reaches this many records is written at the next turn of the event loop (setImmediate). */
  readonly writeAt?: number;
  /** A fresh, empty batch. */
  readonly empty: () => B;
  /** How many records a batch holds. */
  readonly size: (batch: B) => number;
  /** True when a record under `key` is already pending (a new one replaces it and takes no room). */
  readonly holds?: (batch: B, key: string) => boolean;
  /** Writes one batch: synchronously, or as a promise that handles its own failure (never rejects). */
  readonly write: (batch: B) => void | Promise<void>;
  /** Called once for every dropped record. */
  readonly onDropped: () => void;
}

/** The pending batch and its writer. */
export interface BoundedBatch<B> {
  /**
   * The pending batch if it has room for one more record (or already holds `key`, see `holds`);
   * otherwise undefined, and the drop is counted.
   */
  room(key?: string): B | undefined;
  /** Writes what is pending, after any write in flight; a synchronous write is done when it returns. */
  flush(): Promise<void>;
  /** Stops the timer and flushes. */
  close(): Promise<void>;
}

const DONE = Promise.resolve();

/** Creates a bounded batch flushed every `flushIntervalMs`; throws on invalid settings. */
export function createBoundedBatch<B>(options: BoundedBatchOptions<B>): BoundedBatch<B> {
  const { flushIntervalMs, maxPending, writeAt, empty, size, holds, write, onDropped } = options;
  if (!Number.isInteger(maxPending) || maxPending < 1) throw new Error(`maxPending must be a positive integer, got ${maxPending}`);
  if (!Number.isFinite(flushIntervalMs) || flushIntervalMs <= 0) throw new Error(`flushIntervalMs must be a positive number, got ${flushIntervalMs}`);
  let pending = empty();
  let writing: Promise<void> | undefined;

  const flush = (): Promise<void> => {
    if (writing) return writing.then(flush);
    if (size(pending) === 0) return DONE;
    const batch = pending;
    pending = empty();
    const result = write(batch);
    if (!(result instanceof Promise)) return DONE;
    writing = result.finally(() => {
      writing = undefined;
    });
    return writing;
  };
  const timer = setInterval(() => void flush(), flushIntervalMs);
  timer.unref();
  let soon: NodeJS.Immediate | undefined;
  const flushSoon = () => {
    soon = undefined;
    void flush();
  };

  return {
    room(key) {
      const n = size(pending);
      if (n < maxPending || (key !== undefined && holds !== undefined && holds(pending, key))) {
        // The caller adds one record to what is returned: at writeAt, write at the next turn.
        if (writeAt !== undefined && n + 1 >= writeAt && soon === undefined) soon = setImmediate(flushSoon);
        return pending;
      }
      onDropped();
      return undefined;
    },
    flush,
    close() {
      clearInterval(timer);
      if (soon !== undefined) clearImmediate(soon);
      soon = undefined;
      return flush();
    },
  };
}
