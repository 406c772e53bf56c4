/**
 * Counting attempts per key in fixed windows: the part of the login limiter that a shared store
 * can replace, so that every replica counts against one budget (a Redis driver is one INCR with
 * PEXPIRE per take). The in-memory counter here counts on one replica.
 */

/** The result of AttemptCounter.take. */
export interface AttemptCount {
  /** Whether the attempt was counted (false: the key had already reached its limit). */
  readonly counted: boolean;
  /** When the key's current window ends, in ms since the epoch. */
  readonly resetAtMs: number;
}

/**
 * Counts attempts per key. A window starts at a key's first attempt and lasts `windowMs`; every
 * method may be asynchronous (a shared store answers over the network).
 */
export interface AttemptCounter {
  /** Counts one attempt of `key` unless `limit` are already counted in its window. */
  take(key: string, limit: number, windowMs: number, nowMs: number): Promise<AttemptCount>;
  /** Uncounts one attempt of `key` in its current window (it turned out not to count). */
  giveBack(key: string, nowMs: number): Promise<void>;
  /** Forgets `key`'s window. */
  clear(key: string): Promise<void>;
}

/** How long an attempt is refused for while a shared counter cannot be reached and nothing counts meanwhile (fail closed). */
const FAIL_CLOSED_RETRY_MS = 1000;

/**
 * What a shared counter's `take` answers while it cannot reach its store: `fallback`'s count (fail
 * open), or without one a refusal for FAIL_CLOSED_RETRY_MS (fail closed).
 */
export function takeWhileUnreachable(fallback: AttemptCounter | undefined, key: string, limit: number, windowMs: number, nowMs: number): Promise<AttemptCount> {
  if (fallback) return fallback.take(key, limit, windowMs, nowMs);
  return Promise.resolve({ counted: false, resetAtMs: nowMs + FAIL_CLOSED_RETRY_MS });
}

/** Checks a limiter's budgets (positive integers) and window (positive); throws naming the one that is not. */
export function checkBudgets(budgets: Readonly<Record<string, number>>, windowMs: number): void {
  for (const [name, value] of Object.entries(budgets)) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer, got ${value}`);
  }
  if (!(windowMs > 0)) throw new Error(`windowMs must be positive, got ${windowMs}`);
}

/** An attempt reserved before the work it guards: say how it ended (unsettled, it counts as a failure). */
export interface ReservedAttempt {
  readonly allowed: true;
  /** The attempt succeeded: it is given back (and whatever else the limiter clears on success). */
  succeeded(): Promise<void>;
  /** Nothing was judged (the store or a queue failed): the attempt is given back. */
  abandoned(): Promise<void>;
}

/** An attempt refused before any work. */
export interface RefusedAttempt {
  readonly allowed: false;
  readonly retryAfterMs: number;
}

/** A shared counter, which also closes its connection. */
export interface ClosableAttemptCounter extends AttemptCounter {
  close(): Promise<void>;
}

interface Window {
  readonly startMs: number;
  readonly windowMs: number;
  count: number;
}

/**
 * Creates a counter in this process's memory holding at most `maxKeys` windows; beyond that the
 * window started longest ago is dropped.
 */
export function createMemoryAttemptCounter(maxKeys = 100_000): AttemptCounter {
  if (!Number.isInteger(maxKeys) || maxKeys < 1) throw new Error(`maxKeys must be a positive integer, got ${maxKeys}`);
  const windows = new Map<string, Window>();
  const current = (key: string, nowMs: number): Window | undefined => {
    const w = windows.get(key);
    if (w && nowMs - w.startMs >= w.windowMs) {
      windows.delete(key);
      return undefined;
    }
    return w;
  };
  return {
    async take(key, limit, windowMs, nowMs) {
      let w = current(key, nowMs);
      if (!w) {
        // Map order is insertion order, so the first entry holds the window started longest ago.
        if (windows.size >= maxKeys) windows.delete(windows.keys().next().value as string);
        w = { startMs: nowMs, windowMs, count: 0 };
        windows.set(key, w);
      }
      const resetAtMs = w.startMs + w.windowMs;
      if (w.count >= limit) return { counted: false, resetAtMs };
      w.count += 1;
      return { counted: true, resetAtMs };
    },
    async giveBack(key, nowMs) {
      const w = current(key, nowMs);
      if (w && w.count > 0) w.count -= 1;
    },
    async clear(key) {
      windows.delete(key);
    },
  };
}
