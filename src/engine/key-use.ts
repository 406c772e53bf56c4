/**
 * Records API key last use off the hot path: Check only sets a map entry; a timer writes the
 * batch in one statement. The pending map is bounded and every dropped record is counted.
 */

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
  readonly maxPending: number;
  readonly write: (uses: ReadonlyMap<string, number>) => Promise<void>;
  readonly onDropped: () => void;
  readonly onFlushFailed: (error: unknown) => void;
}

/** Creates a recorder that flushes every `flushIntervalMs`. */
export function createKeyUseRecorder(options: KeyUseOptions): KeyUseRecorder {
  let pending = new Map<string, number>();
  let flushing: Promise<void> | undefined;
  const flush = async () => {
    await flushing;
    if (pending.size === 0) return;
    const batch = pending;
    pending = new Map();
    flushing = options.write(batch).catch(options.onFlushFailed);
    await flushing;
    flushing = undefined;
  };
  const timer = setInterval(() => void flush(), options.flushIntervalMs);
  timer.unref();
  return {
    record(id, atMs) {
      if (pending.size >= options.maxPending && !pending.has(id)) {
        options.onDropped();
        return;
      }
      pending.set(id, atMs);
    },
    flush,
    async close() {
      clearInterval(timer);
      await flush();
    },
  };
}
