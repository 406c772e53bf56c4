/**
 * Compact JWS access tokens: Verdict's own (signed by its key ring) and external issuers' (verified
 * through their JWKS). Signing and verification use node:crypto synchronously; only a refetch of an
 * external key set makes verify() return a Promise.
 *
 * Checks, in order: shape (MALFORMED_CREDENTIAL), `alg` (never `none`, pinned per issuer:
 * TOKEN_ALGORITHM_NOT_ALLOWED), `iss` (TOKEN_WRONG_ISSUER), `kid` (TOKEN_UNKNOWN_KEY), signature
 * (TOKEN_BAD_SIGNATURE), then claims: types and usable identifiers (MALFORMED_CREDENTIAL), `aud`
 * (TOKEN_WRONG_AUDIENCE), `exp` (EXPIRED), `nbf` and future `iat` (TOKEN_NOT_YET_VALID). No claim
 * is trusted before its signature is. A cached verification is served only while its issuer still
 * holds the key that made it.
 */
import { createHmac, randomBytes, sign, timingSafeEqual, verify as verifySignature, type KeyObject } from "node:crypto";
import type { ReasonCode } from "../../core/decision.js";
import { isUsableExternalId, isValidTenantId } from "../../core/names.js";
import type { VerifiedClaims } from "./claims.js";
import { createClaimsCache, type ClaimsCache } from "./claims-cache.js";
import { isCompactJws } from "./compact-jws.js";
import { createRemoteKeySet, type ExternalAlgorithm, type RemoteKeySet, type RemoteKeySetStats } from "./jwks-client.js";
import type { KeyRing } from "./signing-keys.js";

/** Every JWS algorithm Verdict knows; anything else is TOKEN_ALGORITHM_NOT_ALLOWED. */
export type JwsAlgorithm = "HS256" | "RS256" | "ES256" | "EdDSA";

/** What Verdict puts in an access token it signs. */
export interface AccessTokenInput {
  readonly issuer: string;
  readonly audience: string | readonly string[];
  /** The user id. */
  readonly subject: string;
  readonly tenant: string;
  readonly sessionId: string;
  readonly roles?: readonly string[];
  /** Lifetime; at least 1 s and at most the ring's retireAfterMs (so the key outlives the token). */
  readonly ttlMs: number;
  /** Token id; random when omitted. */
  readonly jti?: string;
  /** Claim holding the tenant; default "tenant_id". */
  readonly tenantClaim?: string;
}

/** A token Verdict signed, with the values the caller needs to record or return. */
export interface SignedAccessToken {
  readonly token: string;
  readonly jti: string;
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
}

/** Reasons a token is refused. */
export type TokenFailureReason = Extract<
  ReasonCode,
  | "MALFORMED_CREDENTIAL"
  | "EXPIRED"
  | "TOKEN_BAD_SIGNATURE"
  | "TOKEN_ALGORITHM_NOT_ALLOWED"
  | "TOKEN_WRONG_AUDIENCE"
  | "TOKEN_WRONG_ISSUER"
  | "TOKEN_NOT_YET_VALID"
  | "TOKEN_UNKNOWN_KEY"
>;

/** A refused token: a reason and a message that never holds the token. */
export interface TokenFailure {
  readonly ok: false;
  readonly reason: TokenFailureReason;
  readonly message: string;
}

/** The outcome of verify(). */
export type TokenResult = { readonly ok: true; readonly claims: VerifiedClaims } | TokenFailure;

/** Verdict as an issuer: tokens signed by `ring` (its algorithms only; HS256 only for an HS256 ring). */
export interface OwnIssuerConfig {
  readonly issuer: string;
  readonly audience: string | readonly string[];
  /** Only its algorithm and verification keys are used. */
  readonly ring: Pick<KeyRing, "alg" | "verificationKey">;
  /** Default "tenant_id". */
  readonly tenantClaim?: string;
}

/** An external OIDC issuer, verified through its JWKS with the listed algorithms only. */
export interface ExternalIssuerConfig {
  readonly issuer: string;
  readonly audience: string | readonly string[];
  readonly jwksUrl: string;
  readonly algorithms: readonly ExternalAlgorithm[];
  readonly cacheTtlMs?: number;
  readonly cooldownMs?: number;
  readonly timeoutMs?: number;
  /** Default "tenant_id". */
  readonly tenantClaim?: string;
}

/** Options of createTokenVerifier. */
export interface TokenVerifierOptions {
  readonly own?: OwnIssuerConfig;
  readonly external?: readonly ExternalIssuerConfig[];
  /** Clock skew tolerated on exp / nbf / iat; default 0. */
  readonly leewayMs?: number;
  /** Verified-claims cache entries; default 100,000; 0 disables the cache. */
  readonly cacheSize?: number;
  /** Injected fetch for external key sets; default globalThis.fetch. */
  readonly fetch?: typeof globalThis.fetch;
}

/** Counters for metrics. */
export interface TokenVerifierStats {
  readonly signatureChecks: number;
  readonly cacheHits: number;
  readonly cacheEntries: number;
  /** Per external issuer. */
  readonly keySets: Readonly<Record<string, RemoteKeySetStats>>;
}

/** Verifies access tokens; see the module comment for the order of checks. */
export interface TokenVerifier {
  /** Synchronous unless an unknown kid of an external issuer needs a key-set refetch. Never rejects. */
  verify(token: string, nowMs: number): TokenResult | Promise<TokenResult>;
  /** Fetches every external key set (start-up); resolves when all attempts finished, failed or not. */
  warm(nowMs: number): Promise<void>;
  /** Drops cached claims of a session (logout); returns how many entries were dropped. */
  invalidateSession(sessionId: string): number;
  /** Drops cached claims of a subject (user disabled or deleted); returns how many were dropped. */
  invalidateSubject(subject: string): number;
  /** Drops every cached claim (e.g. after removing a compromised key). */
  clearCache(): void;
  stats(): TokenVerifierStats;
}

const DEFAULT_TENANT_CLAIM = "tenant_id";
const DEFAULT_CACHE_SIZE = 100_000;
const MAX_TOKEN_LENGTH = 16_384;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const KNOWN_ALGORITHMS: ReadonlySet<string> = new Set<JwsAlgorithm>(["HS256", "RS256", "ES256", "EdDSA"]);
const EXTERNAL_ALGORITHMS: ReadonlySet<string> = new Set<ExternalAlgorithm>(["RS256", "ES256", "EdDSA"]);
const REGISTERED_CLAIMS = new Set(["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "roles"]);

/**
 * Signs an access token with the ring's active key: header {alg, kid, typ: "JWT"}, payload
 * {iss, sub, aud, <tenantClaim>, roles?, sid, iat, exp, jti}. Throws on invalid input (a bug).
 */
export function signAccessToken(ring: KeyRing, input: AccessTokenInput, nowMs: number): SignedAccessToken {
  const tenantClaim = input.tenantClaim ?? DEFAULT_TENANT_CLAIM;
  if (REGISTERED_CLAIMS.has(tenantClaim) || tenantClaim === "") throw new Error(`tenant claim cannot be "${tenantClaim}"`);
  if (!(input.ttlMs >= 1000 && input.ttlMs <= ring.retireAfterMs)) {
    throw new Error(`token ttlMs must be between 1000 and the key ring's retireAfterMs (${ring.retireAfterMs}), got ${input.ttlMs}`);
  }
  if (input.issuer === "" || input.subject === "") throw new Error("token issuer and subject must not be empty");
  const key = ring.active();
  const iat = Math.floor(nowMs / 1000);
  const exp = Math.floor((nowMs + input.ttlMs) / 1000);
  const jti = input.jti ?? randomBytes(16).toString("base64url");
  const audience = typeof input.audience === "string" ? input.audience : [...input.audience];
  const payload: Record<string, unknown> = { iss: input.issuer, sub: input.subject, aud: audience, [tenantClaim]: input.tenant };
  if (input.roles !== undefined) payload.roles = [...input.roles];
  Object.assign(payload, { sid: input.sessionId, iat, exp, jti });
  const signingInput = `${encodeJson({ alg: key.alg, kid: key.kid, typ: "JWT" })}.${encodeJson(payload)}`;
  const data = Buffer.from(signingInput, "latin1");
  let signature: Buffer;
  if (key.alg === "HS256") signature = createHmac("sha256", key.signingKey).update(data).digest();
  else if (key.alg === "ES256") signature = sign("sha256", data, { key: key.signingKey, dsaEncoding: "ieee-p1363" });
  else signature = sign(null, data, key.signingKey);
  return { token: `${signingInput}.${signature.toString("base64url")}`, jti, issuedAtMs: iat * 1000, expiresAtMs: exp * 1000 };
}

/** Creates a verifier for Verdict's own issuer and any external ones; throws on invalid options. */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const leewayMs = options.leewayMs ?? 0;
  if (!Number.isFinite(leewayMs) || leewayMs < 0) throw new Error(`leewayMs must be a non-negative number, got ${leewayMs}`);
  const cacheSize = options.cacheSize ?? DEFAULT_CACHE_SIZE;
  if (!Number.isInteger(cacheSize) || cacheSize < 0) throw new Error(`cacheSize must be a non-negative integer, got ${cacheSize}`);
  const cache: ClaimsCache | undefined = cacheSize > 0 ? createClaimsCache({ maxEntries: cacheSize }) : undefined;

  const issuers = new Map<string, Issuer>();
  const keySets = new Map<string, RemoteKeySet>();
  const addIssuer = (issuer: Issuer): void => {
    if (issuer.issuer === "") throw new Error("issuer must not be empty");
    if (issuers.has(issuer.issuer)) throw new Error(`issuer configured twice: ${issuer.issuer}`);
    issuers.set(issuer.issuer, issuer);
  };
  if (options.own) addIssuer(ownIssuer(options.own));
  for (const config of options.external ?? []) {
    const keySet = createRemoteKeySet({
      url: config.jwksUrl,
      cacheTtlMs: config.cacheTtlMs,
      cooldownMs: config.cooldownMs,
      timeoutMs: config.timeoutMs,
      fetch: options.fetch,
    });
    addIssuer(externalIssuer(config, keySet));
    keySets.set(config.issuer, keySet);
  }
  if (issuers.size === 0) throw new Error("createTokenVerifier: configure the own issuer or at least one external issuer");

  let signatureChecks = 0;
  let cacheHits = 0;

  const finish = (token: string, parsed: ParsedToken, kid: string, issuer: Issuer, found: IssuerKey | undefined, nowMs: number): TokenResult => {
    if (!found) return fail("TOKEN_UNKNOWN_KEY", "token kid is not in the issuer's key set");
    if (found.alg !== parsed.alg) return fail("TOKEN_ALGORITHM_NOT_ALLOWED", "token algorithm does not match its key");
    signatureChecks += 1;
    if (!checkSignature(parsed, found.key)) return fail("TOKEN_BAD_SIGNATURE", "token signature does not verify");
    const result = readClaims(parsed.payload, issuer, leewayMs, nowMs);
    if (result.ok && cache) cache.set(token, { claims: result.claims, kid, key: found.key }, result.claims.expiresAtMs + leewayMs);
    return result;
  };

  return {
    verify(token, nowMs) {
      const cached = cache?.get(token, nowMs);
      if (cached) {
        // Served only while its issuer still holds the very key that verified it: a key removed
        // from an external key set or from the own ring takes its cached tokens with it.
        if (issuers.get(cached.claims.issuer)?.holds(cached.kid, cached.key, nowMs)) {
          cacheHits += 1;
          return { ok: true, claims: cached.claims };
        }
        cache?.delete(token);
      }
      const parsed = parseToken(token);
      if ("reason" in parsed) return parsed;
      const iss = parsed.payload.iss;
      if (iss === undefined) return fail("TOKEN_WRONG_ISSUER", "token has no issuer");
      if (typeof iss !== "string") return fail("MALFORMED_CREDENTIAL", "token issuer is not a string");
      const issuer = issuers.get(iss);
      if (!issuer) return fail("TOKEN_WRONG_ISSUER", "token issuer is not trusted");
      if (!issuer.algorithms.has(parsed.alg)) return fail("TOKEN_ALGORITHM_NOT_ALLOWED", `algorithm ${parsed.alg} is not allowed for this issuer`);
      if (parsed.kid === undefined) return fail("TOKEN_UNKNOWN_KEY", "token has no kid");
      const kid = parsed.kid;
      const found = issuer.key(kid, nowMs);
      const refetch = found ? undefined : issuer.refetch(nowMs);
      if (!refetch) return finish(token, parsed, kid, issuer, found, nowMs);
      return refetch.then(() => finish(token, parsed, kid, issuer, issuer.key(kid, nowMs), nowMs));
    },
    async warm(nowMs) {
      await Promise.all([...keySets.values()].map((keySet) => keySet.refresh(nowMs)));
    },
    invalidateSession: (sessionId) => cache?.invalidateSession(sessionId) ?? 0,
    invalidateSubject: (subject) => cache?.invalidateSubject(subject) ?? 0,
    clearCache() {
      cache?.clear();
    },
    stats: () => ({
      signatureChecks,
      cacheHits,
      cacheEntries: cache?.size ?? 0,
      keySets: Object.fromEntries([...keySets].map(([issuer, keySet]) => [issuer, keySet.stats()])),
    }),
  };
}

interface ParsedToken {
  readonly alg: JwsAlgorithm;
  readonly kid: string | undefined;
  readonly payload: Record<string, unknown>;
  /** header.payload as bytes. */
  readonly signingInput: Buffer;
  readonly signature: Buffer;
}

interface IssuerKey {
  readonly key: KeyObject;
  readonly alg: JwsAlgorithm;
}

interface Issuer {
  readonly issuer: string;
  readonly audiences: ReadonlySet<string>;
  readonly tenantClaim: string;
  readonly own: boolean;
  readonly algorithms: ReadonlySet<string>;
  key(kid: string, nowMs: number): IssuerKey | undefined;
  /** True while `key` is the issuer's key for `kid` (allocates nothing: it runs on cache hits). */
  holds(kid: string, key: KeyObject, nowMs: number): boolean;
  /** A pending refetch of the key set, or undefined when none may happen now. */
  refetch(nowMs: number): Promise<void> | undefined;
}

function ownIssuer(config: OwnIssuerConfig): Issuer {
  const { ring } = config;
  return {
    issuer: config.issuer,
    audiences: audienceSet(config.audience, config.issuer),
    tenantClaim: checkTenantClaim(config.tenantClaim),
    own: true,
    // An HS256 ring verifies HS256 only; an asymmetric ring never does, so its public keys can
    // never serve as HMAC secrets. Each key is further pinned to its own algorithm.
    algorithms: new Set(ring.alg === "HS256" ? ["HS256"] : ["EdDSA", "ES256"]),
    key(kid, nowMs) {
      const key = ring.verificationKey(kid, nowMs);
      return key && { key: key.verificationKey, alg: key.alg };
    },
    holds: (kid, key, nowMs) => ring.verificationKey(kid, nowMs)?.verificationKey === key,
    refetch: () => undefined,
  };
}

function externalIssuer(config: ExternalIssuerConfig, keySet: RemoteKeySet): Issuer {
  if (config.algorithms.length === 0) throw new Error(`issuer ${config.issuer}: algorithms must not be empty`);
  for (const alg of config.algorithms) {
    if (!EXTERNAL_ALGORITHMS.has(alg)) throw new Error(`issuer ${config.issuer}: algorithm ${String(alg)} is not allowed (RS256, ES256, EdDSA only)`);
  }
  return {
    issuer: config.issuer,
    audiences: audienceSet(config.audience, config.issuer),
    tenantClaim: checkTenantClaim(config.tenantClaim),
    own: false,
    algorithms: new Set(config.algorithms),
    key: (kid, nowMs) => keySet.get(kid, nowMs),
    holds: (kid, key, nowMs) => keySet.get(kid, nowMs)?.key === key,
    refetch: (nowMs) => keySet.requestRefresh(nowMs),
  };
}

function audienceSet(audience: string | readonly string[], issuer: string): ReadonlySet<string> {
  const set = new Set(typeof audience === "string" ? [audience] : audience);
  if (set.size === 0 || set.has("")) throw new Error(`issuer ${issuer}: audience must be non-empty strings`);
  return set;
}

function checkTenantClaim(claim: string | undefined): string {
  const name = claim ?? DEFAULT_TENANT_CLAIM;
  if (name === "") throw new Error("tenantClaim must not be empty");
  return name;
}

function fail(reason: TokenFailureReason, message: string): TokenFailure {
  return { ok: false, reason, message };
}

function encodeJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value), "utf8").toString("base64url");
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function decodeSegment(segment: string): Buffer | undefined {
  // Buffer's base64url decoder skips invalid characters; insist on the exact alphabet instead.
  if (!BASE64URL.test(segment) || segment.length % 4 === 1) return undefined;
  return Buffer.from(segment, "base64url");
}

function decodeJsonObject(segment: string): Record<string, unknown> | undefined {
  const bytes = decodeSegment(segment);
  if (!bytes) return undefined;
  try {
    const value: unknown = JSON.parse(bytes.toString("utf8"));
    return isRecord(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

function parseToken(token: string): ParsedToken | TokenFailure {
  if (typeof token !== "string" || token.length > MAX_TOKEN_LENGTH) return fail("MALFORMED_CREDENTIAL", "token is not a string of acceptable length");
  const first = token.indexOf(".");
  const last = token.lastIndexOf(".");
  if (first === 0 || !isCompactJws(token)) {
    return fail("MALFORMED_CREDENTIAL", "token is not three dot-separated segments");
  }
  const header = decodeJsonObject(token.slice(0, first));
  if (!header) return fail("MALFORMED_CREDENTIAL", "token header is not a base64url JSON object");
  const alg = header.alg;
  if (typeof alg !== "string" || alg === "") return fail("MALFORMED_CREDENTIAL", "token header has no alg");
  if (alg.toLowerCase() === "none") return fail("TOKEN_ALGORITHM_NOT_ALLOWED", "unsigned tokens (alg none) are never accepted");
  if (!KNOWN_ALGORITHMS.has(alg)) return fail("TOKEN_ALGORITHM_NOT_ALLOWED", `algorithm ${alg.slice(0, 16)} is not supported`);
  if ("crit" in header) return fail("MALFORMED_CREDENTIAL", "token header has crit extensions, none are supported");
  const kid = header.kid;
  if (kid !== undefined && typeof kid !== "string") return fail("MALFORMED_CREDENTIAL", "token kid is not a string");
  const payload = decodeJsonObject(token.slice(first + 1, last));
  if (!payload) return fail("MALFORMED_CREDENTIAL", "token payload is not a base64url JSON object");
  const signatureText = token.slice(last + 1);
  const signature = decodeSegment(signatureText);
  // Non-canonical trailing bits would let many strings carry one signature; allow exactly one.
  if (!signature || signature.toString("base64url") !== signatureText) return fail("MALFORMED_CREDENTIAL", "token signature is not canonical base64url");
  return { alg: alg as JwsAlgorithm, kid, payload, signingInput: Buffer.from(token.slice(0, last), "latin1"), signature };
}

function checkSignature(parsed: ParsedToken, key: KeyObject): boolean {
  const { alg, signingInput, signature } = parsed;
  try {
    switch (alg) {
      case "HS256": {
        if (key.type !== "secret" || signature.length !== 32) return false;
        return timingSafeEqual(createHmac("sha256", key).update(signingInput).digest(), signature);
      }
      case "RS256":
        return key.asymmetricKeyType === "rsa" && verifySignature("sha256", signingInput, key, signature);
      case "ES256":
        return key.asymmetricKeyType === "ec" && signature.length === 64 && verifySignature("sha256", signingInput, { key, dsaEncoding: "ieee-p1363" }, signature);
      case "EdDSA":
        return key.asymmetricKeyType === "ed25519" && verifySignature(null, signingInput, key, signature);
    }
  } catch {
    return false;
  }
}

function readClaims(payload: Record<string, unknown>, issuer: Issuer, leewayMs: number, nowMs: number): TokenResult {
  const { sub, aud, exp, nbf, iat, sid, jti } = payload;
  const tenant = payload[issuer.tenantClaim];
  if (typeof sub !== "string" || sub === "") return fail("MALFORMED_CREDENTIAL", "token has no subject");
  if (!isUsableExternalId(sub)) {
    return fail("MALFORMED_CREDENTIAL", "token subject is blank, padded with whitespace, longer than 255 characters or holds control or invisible characters");
  }
  if (!isNumericDate(exp)) return fail("MALFORMED_CREDENTIAL", "token has no valid exp");
  if (!isOptional(nbf, isNumericDate) || !isOptional(iat, isNumericDate)) return fail("MALFORMED_CREDENTIAL", "token nbf or iat is not a number");
  if (!isOptional(tenant, isString) || !isOptional(sid, isString) || !isOptional(jti, isString)) {
    return fail("MALFORMED_CREDENTIAL", "token tenant, sid or jti is not a string");
  }
  if (tenant !== undefined && tenant !== "" && !isValidTenantId(tenant)) return fail("MALFORMED_CREDENTIAL", `token claim ${issuer.tenantClaim} is not a tenant id`);
  if ((sid !== undefined && sid !== "" && !isUsableExternalId(sid)) || (jti !== undefined && jti !== "" && !isUsableExternalId(jti))) {
    return fail("MALFORMED_CREDENTIAL", "token sid or jti is padded with whitespace, longer than 255 characters or holds control or invisible characters");
  }
  const audience = typeof aud === "string" ? [aud] : aud;
  if (audience !== undefined && !(Array.isArray(audience) && audience.every(isString))) return fail("MALFORMED_CREDENTIAL", "token aud is not a string or an array of strings");
  if (audience === undefined || !audience.some((a: string) => issuer.audiences.has(a))) return fail("TOKEN_WRONG_AUDIENCE", "token audience is not accepted");
  if (nowMs >= exp * 1000 + leewayMs) return fail("EXPIRED", "token has expired");
  if (nbf !== undefined && nbf * 1000 > nowMs + leewayMs) return fail("TOKEN_NOT_YET_VALID", "token is not valid yet (nbf)");
  if (iat !== undefined && iat * 1000 > nowMs + leewayMs) return fail("TOKEN_NOT_YET_VALID", "token was issued in the future (iat)");
  const claims: VerifiedClaims = {
    issuer: issuer.issuer,
    subject: sub,
    audience: Object.freeze(audience as string[]),
    expiresAtMs: exp * 1000,
    issuedAtMs: iat === undefined ? 0 : iat * 1000,
    notBeforeMs: nbf === undefined ? 0 : nbf * 1000,
    tenant: tenant ?? "",
    sessionId: sid ?? "",
    jti: jti ?? "",
    own: issuer.own,
    payload: Object.freeze(payload),
  };
  return { ok: true, claims: Object.freeze(claims) };
}

function isString(value: unknown): value is string {
  return typeof value === "string";
}

function isNumericDate(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

function isOptional<T>(value: unknown, check: (v: unknown) => v is T): value is T | undefined {
  return value === undefined || check(value);
}
