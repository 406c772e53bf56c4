/**
 * Verified-claims cache: a token already verified is not verified again while it is valid.
 *
 * Only successful verifications are cached. Failures are cheap to recompute (malformed, unknown
 * issuer or algorithm fail before any cryptography; a bad signature costs one verify), caching them
 * would let a flood of junk tokens evict good entries, and some failures change with time or state
 * (not yet valid, unknown kid before a refetch).
 */
import type { KeyObject } from "node:crypto";
import type { VerifiedClaims } from "./claims.js";

/**
 * A verified token as cached: its claims and the key that verified its signature. The entry is
 * good only while the issuer still serves that very key under that kid (the verifier checks on
 * every hit), so a key dropped from a key set or a key ring takes its cached tokens with it.
 */
export interface CachedClaims {
  readonly claims: VerifiedClaims;
  /** The `kid` the token named. */
  readonly kid: string;
  /** The key that verified the signature, compared by identity. */
  readonly key: KeyObject;
}

/** A bounded token -> claims cache with invalidation by session and by subject. */
export interface ClaimsCache {
  /** The cached verification of a token, or undefined when absent or no longer valid at `nowMs`. */
  get(token: string, nowMs: number): CachedClaims | undefined;
  /** Caches a verified token; it is never served at or after `validUntilMs`. */
  set(token: string, verified: CachedClaims, validUntilMs: number): void;
  /** Drops one token's entry (its key is gone); returns whether there was one. */
  delete(token: string): boolean;
  /** Drops every entry of this session id; returns how many were dropped. */
  invalidateSession(sessionId: string): number;
  /**
   * Drops every entry of this subject (user id); returns how many were dropped. Subjects are not
   * qualified by issuer, so an external subject equal to a Verdict user id is dropped too (harmless).
   */
  invalidateSubject(subject: string): number;
  /** Drops everything. */
  clear(): void;
  /** Number of entries held (expired ones included until they are read or evicted). */
  readonly size: number;
}

/** Options of createClaimsCache. */
export interface ClaimsCacheOptions {
  /** Upper bound on entries; at least 1. */
  readonly maxEntries: number;
}

interface Entry extends CachedClaims {
  readonly validUntilMs: number;
  /** Set on every hit; eviction gives a referenced entry a second chance (CLOCK). */
  referenced: boolean;
}

/**
 * Creates a claims cache with CLOCK (second-chance) eviction over a Map's insertion order: a hit
 * only sets a flag, and eviction is amortised O(1).
 */
export function createClaimsCache(options: ClaimsCacheOptions): ClaimsCache {
  const { maxEntries } = options;
  if (!Number.isInteger(maxEntries) || maxEntries < 1) {
    throw new Error(`claims cache maxEntries must be a positive integer, got ${maxEntries}`);
  }
  const entries = new Map<string, Entry>();
  const bySession = new Map<string, Set<string>>();
  const bySubject = new Map<string, Set<string>>();

  const index = (map: Map<string, Set<string>>, key: string, token: string): void => {
    if (key === "") return;
    const tokens = map.get(key);
    if (tokens) tokens.add(token);
    else map.set(key, new Set([token]));
  };
  const unindex = (map: Map<string, Set<string>>, key: string, token: string): void => {
    const tokens = map.get(key);
    if (!tokens) return;
    tokens.delete(token);
    if (tokens.size === 0) map.delete(key);
  };
  const remove = (token: string, entry: Entry): void => {
    entries.delete(token);
    unindex(bySession, entry.claims.sessionId, token);
    unindex(bySubject, entry.claims.subject, token);
  };
  const evictOne = (): void => {
    for (const [token, entry] of entries) {
      if (entry.referenced) {
        entry.referenced = false;
        entries.delete(token);
        entries.set(token, entry);
      } else {
        remove(token, entry);
        return;
      }
    }
  };
  const invalidate = (map: Map<string, Set<string>>, key: string): number => {
    const tokens = map.get(key);
    if (!tokens) return 0;
    const dropped = [...tokens];
    for (const token of dropped) {
      const entry = entries.get(token);
      if (entry) remove(token, entry);
    }
    return dropped.length;
  };

  return {
    get(token, nowMs) {
      const entry = entries.get(token);
      if (entry === undefined) return undefined;
      if (nowMs >= entry.validUntilMs) {
        remove(token, entry);
        return undefined;
      }
      entry.referenced = true;
      return entry;
    },
    set(token, verified, validUntilMs) {
      const previous = entries.get(token);
      if (previous) remove(token, previous);
      else if (entries.size >= maxEntries) evictOne();
      const { claims, kid, key } = verified;
      entries.set(token, { claims, kid, key, validUntilMs, referenced: false });
      index(bySession, claims.sessionId, token);
      index(bySubject, claims.subject, token);
    },
    delete(token) {
      const entry = entries.get(token);
      if (entry) remove(token, entry);
      return entry !== undefined;
    },
    invalidateSession: (sessionId) => invalidate(bySession, sessionId),
    invalidateSubject: (subject) => invalidate(bySubject, subject),
    clear() {
      entries.clear();
      bySession.clear();
      bySubject.clear();
    },
    get size() {
      return entries.size;
    },
  };
}
