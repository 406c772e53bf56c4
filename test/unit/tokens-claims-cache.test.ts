import { createSecretKey } from "node:crypto";
import { describe, expect, it } from "vitest";
import { type CachedClaims, createClaimsCache } from "../../src/authn/tokens/claims-cache.js";
import { createTokenVerifier, signAccessToken, type TokenResult } from "../../src/authn/tokens/jwt.js";
import { createSigningKeyRing } from "../../src/authn/tokens/signing-keys.js";

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;
const ISSUER = "https://verdict.example";

const KEY = createSecretKey(Buffer.alloc(32, 7));

function claims(subject: string, sessionId: string): CachedClaims {
  return {
    claims: { issuer: ISSUER, subject, audience: ["verdict"], expiresAtMs: T0 + HOUR, issuedAtMs: T0, notBeforeMs: 0, tenant: "t", sessionId, jti: "", own: true, payload: {} },
    kid: "k1",
    key: KEY,
  };
}

describe("claims cache", () => {
  it("serves an entry until, but not at, its deadline", () => {
    const cache = createClaimsCache({ maxEntries: 10 });
    const value = claims("u1", "s1");
    cache.set("tok", value, T0 + 100);
    expect(cache.get("tok", T0 + 99)).toMatchObject({ claims: value.claims, kid: "k1", key: KEY });
    expect(cache.get("tok", T0 + 100)).toBeUndefined();
    expect(cache.size).toBe(0);
    expect(cache.get("other", T0)).toBeUndefined();
  });

  it("invalidates by session id and by subject", () => {
    const cache = createClaimsCache({ maxEntries: 10 });
    cache.set("a", claims("u1", "s1"), T0 + HOUR);
    cache.set("b", claims("u1", "s2"), T0 + HOUR);
    cache.set("c", claims("u2", "s3"), T0 + HOUR);
    cache.set("d", claims("u3", ""), T0 + HOUR);
    expect(cache.invalidateSession("s1")).toBe(1);
    expect(cache.get("a", T0)).toBeUndefined();
    expect(cache.get("b", T0)).toBeDefined();
    expect(cache.invalidateSubject("u1")).toBe(1);
    expect(cache.get("b", T0)).toBeUndefined();
    expect(cache.invalidateSession("")).toBe(0);
    expect(cache.invalidateSubject("nobody")).toBe(0);
    expect(cache.size).toBe(2);
    cache.clear();
    expect(cache.size).toBe(0);
    expect(cache.get("c", T0)).toBeUndefined();
  });

  it("keeps indexes consistent when an entry is replaced or evicted", () => {
    const cache = createClaimsCache({ maxEntries: 1 });
    cache.set("a", claims("u1", "s1"), T0 + HOUR);
    cache.set("a", claims("u2", "s2"), T0 + HOUR);
    expect(cache.invalidateSession("s1")).toBe(0);
    cache.set("b", claims("u3", "s3"), T0 + HOUR);
    expect(cache.invalidateSubject("u2")).toBe(0);
    expect(cache.invalidateSubject("u3")).toBe(1);
  });

  it("stays within its bound and gives recently read entries a second chance", () => {
    const cache = createClaimsCache({ maxEntries: 100 });
    for (let i = 0; i < 100; i += 1) cache.set(`t${i}`, claims(`u${i}`, `s${i}`), T0 + HOUR);
    expect(cache.get("t0", T0)).toBeDefined();
    for (let i = 100; i < 1000; i += 1) {
      cache.set(`t${i}`, claims(`u${i}`, `s${i}`), T0 + HOUR);
      expect(cache.get("t0", T0)).toBeDefined();
      expect(cache.size).toBeLessThanOrEqual(100);
    }
    expect(cache.size).toBe(100);
    expect(cache.get("t1", T0)).toBeUndefined();
    expect(cache.get("t999", T0)).toBeDefined();
  });

  it("refuses a non-positive bound", () => {
    expect(() => createClaimsCache({ maxEntries: 0 })).toThrow(/maxEntries/);
  });
});

describe("claims cache inside the verifier", () => {
  const ring = createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0 });
  const own = { issuer: ISSUER, audience: "verdict", ring };
  const sign = (subject: string, sessionId: string, ttlMs = 60_000) =>
    signAccessToken(ring, { issuer: ISSUER, audience: "verdict", subject, tenant: "t", sessionId, ttlMs }, T0).token;
  const ok = (result: TokenResult | Promise<TokenResult>): boolean => (result as TokenResult).ok;

  it("does not verify the signature again on a hit", () => {
    const verifier = createTokenVerifier({ own });
    const token = sign("u1", "s1");
    const first = verifier.verify(token, T0) as TokenResult;
    const second = verifier.verify(token, T0 + 1) as TokenResult;
    expect(first.ok && second.ok && second.claims).toBe(first.ok && first.claims);
    expect(verifier.stats()).toMatchObject({ signatureChecks: 1, cacheHits: 1, cacheEntries: 1 });
  });

  it("verifies every time with the cache disabled", () => {
    const verifier = createTokenVerifier({ own, cacheSize: 0 });
    const token = sign("u1", "s1");
    verifier.verify(token, T0);
    verifier.verify(token, T0 + 1);
    expect(verifier.stats()).toMatchObject({ signatureChecks: 2, cacheHits: 0, cacheEntries: 0 });
  });

  it("never serves a cached token at or past its exp (plus leeway)", () => {
    const verifier = createTokenVerifier({ own, leewayMs: 1000 });
    const token = sign("u1", "s1", 60_000);
    expect(ok(verifier.verify(token, T0))).toBe(true);
    expect(ok(verifier.verify(token, T0 + 60_999))).toBe(true);
    expect(verifier.verify(token, T0 + 61_000)).toMatchObject({ ok: false, reason: "EXPIRED" });
    expect(verifier.stats()).toMatchObject({ signatureChecks: 2, cacheHits: 1 });
  });

  it("does not cache failures, and a tampered token never hits the entry of the genuine one", () => {
    const verifier = createTokenVerifier({ own });
    const token = sign("u1", "s1");
    verifier.verify(token, T0);
    const tampered = `${token.slice(0, -2)}${token.at(-2) === "A" ? "B" : "A"}${token.slice(-1)}`;
    expect(tampered).not.toBe(token);
    expect(verifier.verify(tampered, T0)).toMatchObject({ ok: false, reason: "TOKEN_BAD_SIGNATURE" });
    expect(verifier.verify(tampered, T0)).toMatchObject({ ok: false, reason: "TOKEN_BAD_SIGNATURE" });
    expect(verifier.stats()).toMatchObject({ signatureChecks: 3, cacheHits: 0, cacheEntries: 1 });
  });

  it("drops entries by session and by user, which are then verified again", () => {
    const verifier = createTokenVerifier({ own });
    const a = sign("u1", "s1");
    const b = sign("u1", "s2");
    const c = sign("u2", "s3");
    for (const token of [a, b, c]) verifier.verify(token, T0);
    expect(verifier.invalidateSession("s1")).toBe(1);
    expect(verifier.invalidateSubject("u1")).toBe(1);
    expect(verifier.stats().cacheEntries).toBe(1);
    for (const token of [a, b, c]) verifier.verify(token, T0);
    expect(verifier.stats()).toMatchObject({ signatureChecks: 5, cacheHits: 1 });
    verifier.clearCache();
    expect(verifier.stats().cacheEntries).toBe(0);
  });

  it("respects cacheSize", () => {
    const verifier = createTokenVerifier({ own, cacheSize: 5 });
    for (let i = 0; i < 20; i += 1) verifier.verify(sign(`u${i}`, `s${i}`), T0);
    expect(verifier.stats().cacheEntries).toBe(5);
  });
});

describe("claims cache and the own key ring", () => {
  it("never serves a token of a key the ring no longer holds, nor one the ring retired past its overlap", () => {
    const first = createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0 });
    let current = first;
    const view = {
      get alg() {
        return current.alg;
      },
      verificationKey: (kid: string, nowMs: number) => current.verificationKey(kid, nowMs),
    };
    const verifier = createTokenVerifier({ own: { issuer: ISSUER, audience: "verdict", ring: view } });
    const sign = () => signAccessToken(current, { issuer: ISSUER, audience: "verdict", subject: "u1", tenant: "t", sessionId: "s1", ttlMs: 60_000 }, T0).token;
    const old = sign();
    expect(verifier.verify(old, T0)).toMatchObject({ ok: true });
    expect(verifier.verify(old, T0 + 1)).toMatchObject({ ok: true });
    expect(verifier.stats()).toMatchObject({ signatureChecks: 1, cacheHits: 1 });

    // Rotated with the previous key dropped, as another replica stores it and this one reloads it.
    first.rotate(T0 + 2);
    current = createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0 + 2, records: first.exportRecords().filter((r) => r.retiredAtMs === null) });
    const fresh = sign();
    expect(verifier.verify(old, T0 + 3)).toMatchObject({ ok: false, reason: "TOKEN_UNKNOWN_KEY" });
    expect(verifier.verify(fresh, T0 + 3)).toMatchObject({ ok: true });
    expect(verifier.verify(fresh, T0 + 4)).toMatchObject({ ok: true });
    expect(verifier.stats()).toMatchObject({ cacheHits: 2 });
  });
});
