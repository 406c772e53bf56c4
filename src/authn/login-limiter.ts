/**
 * A tight in-memory limit on failed logins per (username, peer address), against password
 * guessing. Fixed windows: after `maxFailures` failures within `windowMs`, further attempts of that
 * pair are refused until the window ends, before any password work is done. A success clears the
 * pair. Per replica: N replicas allow up to N times the limit.
 */

/** Options of createLoginLimiter. */
export interface LoginLimiterOptions {
  readonly maxFailures: number;
  readonly windowMs: number;
  /** Most pairs tracked; the oldest window is dropped beyond it (default 100,000). */
  readonly maxEntries?: number;
}

/** The answer for one attempt. */
export type LoginAllowance = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterMs: number };

/** Counts failed logins. Keys are built from the username and the peer's address (port dropped). */
export interface LoginLimiter {
  /** Whether an attempt may run now. */
  check(username: string, peer: string, nowMs: number): LoginAllowance;
  /** Records a failed attempt. */
  fail(username: string, peer: string, nowMs: number): void;
  /** Forgets the pair after a successful login. */
  succeed(username: string, peer: string): void;
}

interface Window {
  startMs: number;
  failures: number;
}

/** The address part of a peer such as "ipv4:127.0.0.1:5050", "[::1]:5050" or "127.0.0.1". */
function peerAddress(peer: string): string {
  const bare = peer.replace(/^ipv[46]:/, "");
  const bracketed = /^\[([^\]]*)\](?::\d+)?$/.exec(bare);
  if (bracketed) return bracketed[1];
  return /^[^:]*:\d+$/.test(bare) ? bare.slice(0, bare.lastIndexOf(":")) : bare;
}

/** Creates a limiter; throws on invalid options. */
export function createLoginLimiter(options: LoginLimiterOptions): LoginLimiter {
  const { maxFailures, windowMs } = options;
  const maxEntries = options.maxEntries ?? 100_000;
  if (!Number.isInteger(maxFailures) || maxFailures < 1) throw new Error(`maxFailures must be a positive integer, got ${maxFailures}`);
  if (!(windowMs > 0)) throw new Error(`windowMs must be positive, got ${windowMs}`);
  const windows = new Map<string, Window>();
  const key = (username: string, peer: string) => `${username}\u0000${peerAddress(peer)}`;
  const current = (k: string, nowMs: number): Window | undefined => {
    const w = windows.get(k);
    if (w && nowMs - w.startMs >= windowMs) {
      windows.delete(k);
      return undefined;
    }
    return w;
  };
  return {
    check(username, peer, nowMs) {
      const w = current(key(username, peer), nowMs);
      if (!w || w.failures < maxFailures) return { allowed: true };
      return { allowed: false, retryAfterMs: w.startMs + windowMs - nowMs };
    },
    fail(username, peer, nowMs) {
      const k = key(username, peer);
      const w = current(k, nowMs);
      if (w) {
        w.failures += 1;
        return;
      }
      // Map order is insertion order, so the first entry holds the oldest window.
      if (windows.size >= maxEntries) windows.delete(windows.keys().next().value as string);
      windows.set(k, { startMs: nowMs, failures: 1 });
    },
    succeed(username, peer) {
      windows.delete(key(username, peer));
    },
  };
}
