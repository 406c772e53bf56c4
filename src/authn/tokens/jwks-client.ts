/**
 * External issuers' key sets, fetched from a JWKS URL and held as KeyObjects by kid.
 *
 * Lookups are synchronous. A refetch happens when the TTL has passed (in the background, the cached
 * set keeps serving) or when a token names an unknown kid (at most once per cooldown). One fetch is
 * in flight at a time and every caller shares it. A failed fetch (network, timeout, HTTP status,
 * garbage, no usable key) keeps the last good set and is counted.
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from "node:crypto";

/** Algorithms accepted from external issuers; HMAC never (a public key is not a secret). */
export type ExternalAlgorithm = "RS256" | "ES256" | "EdDSA";

/** A usable key of a remote set, with the one algorithm it verifies. */
export interface RemoteKey {
  readonly key: KeyObject;
  readonly alg: ExternalAlgorithm;
}

/** Options of createRemoteKeySet. */
export interface RemoteKeySetOptions {
  /** https URL, or http on a loopback host (127.0.0.1, [::1], localhost). */
  readonly url: string;
  /** How long a fetched set is fresh; default 10 minutes. */
  readonly cacheTtlMs?: number;
  /** Minimum time between two fetch attempts; default 30 s. */
  readonly cooldownMs?: number;
  /** Per-fetch timeout, body included; default 5 s. */
  readonly timeoutMs?: number;
  /** Injected fetch; default globalThis.fetch. */
  readonly fetch?: typeof globalThis.fetch;
}

/** Counters for metrics and health. */
export interface RemoteKeySetStats {
  readonly fetches: number;
  readonly failures: number;
  /** Message of the latest failure; "" when none. */
  readonly lastError: string;
  /** Time (the caller's nowMs at the start) of the latest successful fetch; undefined before one. */
  readonly lastSuccessMs: number | undefined;
  readonly keys: number;
}

/** A cached remote JWKS. */
export interface RemoteKeySet {
  readonly url: string;
  /** The key with this kid, or undefined. Starts a background refetch when the TTL has passed. */
  get(kid: string, nowMs: number): RemoteKey | undefined;
  /**
   * Asks for a refetch because a token named an unknown kid. Returns the shared in-flight fetch, a
   * new one if the cooldown allows, or undefined when the cooldown forbids. Never rejects.
   */
  requestRefresh(nowMs: number): Promise<void> | undefined;
  /** Fetches now regardless of the cooldown (start-up), or joins the fetch in flight. Never rejects. */
  refresh(nowMs: number): Promise<void>;
  stats(): RemoteKeySetStats;
}

const MAX_KEYS = 100;
const MIN_RSA_BITS = 2048;
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "[::1]", "localhost"]);

/** Creates a remote key set; throws on invalid options. Nothing is fetched until first use or refresh(). */
export function createRemoteKeySet(options: RemoteKeySetOptions): RemoteKeySet {
  const url = checkUrl(options.url);
  const cacheTtlMs = checkDuration("cacheTtlMs", options.cacheTtlMs ?? 600_000);
  const cooldownMs = checkDuration("cooldownMs", options.cooldownMs ?? 30_000);
  const timeoutMs = checkDuration("timeoutMs", options.timeoutMs ?? 5_000);
  const fetchFn = options.fetch ?? globalThis.fetch;
  if (typeof fetchFn !== "function") throw new Error("createRemoteKeySet: fetch is not a function");

  let keys = new Map<string, RemoteKey>();
  let inFlight: Promise<void> | undefined;
  let lastAttemptMs: number | undefined;
  let lastSuccessMs: number | undefined;
  let fetches = 0;
  let failures = 0;
  let lastError = "";

  const start = (nowMs: number): Promise<void> => {
    lastAttemptMs = nowMs;
    fetches += 1;
    inFlight = load()
      .then(
        (fresh) => {
          keys = carryOver(keys, fresh);
          lastSuccessMs = nowMs;
        },
        (error: unknown) => {
          failures += 1;
          lastError = error instanceof Error ? error.message : String(error);
        },
      )
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };
  const cooledDown = (nowMs: number): boolean => lastAttemptMs === undefined || nowMs - lastAttemptMs >= cooldownMs;

  const load = async (): Promise<Map<string, RemoteKey>> => {
    const response = await fetchFn(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: "application/json" }, redirect: "error" });
    if (!response.ok) throw new Error(`JWKS ${url}: HTTP ${response.status}`);
    let body: unknown;
    try {
      body = await response.json();
    } catch {
      throw new Error(`JWKS ${url}: response is not JSON`);
    }
    if (!isRecord(body) || !Array.isArray(body.keys)) throw new Error(`JWKS ${url}: response has no "keys" array`);
    const fresh = new Map<string, RemoteKey>();
    for (const jwk of body.keys.slice(0, MAX_KEYS)) {
      const imported = importJwk(jwk);
      if (imported && !fresh.has(imported[0])) fresh.set(imported[0], imported[1]);
    }
    if (fresh.size === 0) throw new Error(`JWKS ${url}: no usable signing key`);
    return fresh;
  };

  return {
    url,
    get(kid, nowMs) {
      if (inFlight === undefined && (lastSuccessMs === undefined || nowMs - lastSuccessMs >= cacheTtlMs) && cooledDown(nowMs)) {
        void start(nowMs);
      }
      return keys.get(kid);
    },
    requestRefresh(nowMs) {
      if (inFlight) return inFlight;
      return cooledDown(nowMs) ? start(nowMs) : undefined;
    },
    refresh(nowMs) {
      return inFlight ?? start(nowMs);
    },
    stats: () => ({ fetches, failures, lastError, lastSuccessMs, keys: keys.size }),
  };
}

/**
 * The fresh set, keeping the previous object of every key whose kid, algorithm and material did
 * not change: claims cached against a key stay valid exactly as long as the set serves that key.
 */
function carryOver(previous: ReadonlyMap<string, RemoteKey>, fresh: Map<string, RemoteKey>): Map<string, RemoteKey> {
  for (const [kid, key] of fresh) {
    const old = previous.get(kid);
    if (old && old.alg === key.alg && old.key.equals(key.key)) fresh.set(kid, old);
  }
  return fresh;
}

function checkUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`JWKS URL is not a URL: ${raw}`);
  }
  if (url.protocol === "https:" || (url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname))) return url.href;
  throw new Error(`JWKS URL must use https (http only on a loopback host): ${raw}`);
}

function checkDuration(name: string, ms: number): number {
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`createRemoteKeySet: ${name} must be a positive number, got ${ms}`);
  return ms;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Imports the public part of one JWK; undefined for anything unusable (skipped, like jose does). */
function importJwk(jwk: unknown): [string, RemoteKey] | undefined {
  if (!isRecord(jwk) || typeof jwk.kid !== "string" || jwk.kid === "") return undefined;
  if (jwk.use !== undefined && jwk.use !== "sig") return undefined;
  const text = (name: string): string | undefined => (typeof jwk[name] === "string" && jwk[name] !== "" ? (jwk[name] as string) : undefined);
  let alg: ExternalAlgorithm;
  let publicJwk: JsonWebKey;
  if (jwk.kty === "RSA" && text("n") && text("e")) {
    alg = "RS256";
    publicJwk = { kty: "RSA", n: text("n"), e: text("e") };
  } else if (jwk.kty === "EC" && jwk.crv === "P-256" && text("x") && text("y")) {
    alg = "ES256";
    publicJwk = { kty: "EC", crv: "P-256", x: text("x"), y: text("y") };
  } else if (jwk.kty === "OKP" && jwk.crv === "Ed25519" && text("x")) {
    alg = "EdDSA";
    publicJwk = { kty: "OKP", crv: "Ed25519", x: text("x") };
  } else {
    return undefined;
  }
  if (jwk.alg !== undefined && jwk.alg !== alg) return undefined;
  let key: KeyObject;
  try {
    key = createPublicKey({ key: publicJwk, format: "jwk" });
  } catch {
    return undefined;
  }
  if (alg === "RS256" && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) return undefined;
  return [jwk.kid, { key, alg }];
}
