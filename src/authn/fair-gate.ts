/**
 * A gate that runs at most a few tasks at once and serves the waiting ones in turn across their
 * sources (round robin), so that a burst from one source waits behind its own work instead of in
 * front of everyone else's.
 */

/** Thrown by FairGate.run when the task may not even wait. */
export class GateFullError extends Error {
  constructor() {
    super("too many tasks waiting");
    this.name = "GateFullError";
  }
}

/** Bounds of a FairGate. */
export interface FairGateOptions {
  readonly maxConcurrent: number;
  /** Most tasks waiting in all. */
  readonly maxWaiting: number;
  /** Most tasks waiting from one source. */
  readonly maxWaitingPerSource: number;
}

/** Runs tasks under the bounds; each task names its source (for example a client address). */
export interface FairGate {
  /** Runs `work` when a slot is free and it is `source`'s turn; rejects with GateFullError beyond the bounds. */
  run<T>(source: string, work: () => Promise<T>): Promise<T>;
}

/** Creates a gate; throws on invalid bounds. */
export function createFairGate(options: FairGateOptions): FairGate {
  const { maxConcurrent, maxWaiting, maxWaitingPerSource } = options;
  for (const [name, value] of Object.entries(options)) {
    if (!Number.isInteger(value) || value < (name === "maxConcurrent" ? 1 : 0)) throw new Error(`${name} must be a whole number, got ${value}`);
  }
  let running = 0;
  let waiting = 0;
  // Sources with waiting tasks, in the order of their turns (Map order is insertion order): those
  // not served since they began to wait come first, so a source that just arrived waits only for
  // the tasks running now, not for a turn of every busy source.
  const arrived = new Map<string, Array<() => void>>();
  const served = new Map<string, Array<() => void>>();

  /** Hands the slot just freed to the next source in turn, or frees it. */
  const release = () => {
    const turns = arrived.size > 0 ? arrived : served;
    const first = turns.entries().next();
    if (first.done) {
      running--;
      return;
    }
    const [source, queue] = first.value;
    const wake = queue.shift()!;
    turns.delete(source);
    if (queue.length > 0) served.set(source, queue);
    waiting--;
    wake();
  };

  return {
    async run(source, work) {
      if (running >= maxConcurrent) {
        const queue = arrived.get(source) ?? served.get(source);
        if (waiting >= maxWaiting || (queue?.length ?? 0) >= maxWaitingPerSource) throw new GateFullError();
        waiting++;
        await new Promise<void>((resolve) => {
          if (queue) queue.push(resolve);
          else arrived.set(source, [resolve]);
        });
      } else {
        running++;
      }
      try {
        return await work();
      } finally {
        release();
      }
    },
  };
}
