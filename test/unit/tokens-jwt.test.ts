import { createHmac, createPrivateKey, generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { createLocalJWKSet, jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import { createTokenVerifier, signAccessToken, type TokenResult, type TokenVerifier } from "../../src/authn/tokens/jwt.js";
import { createHmacKeyRing, createSigningKeyRing, type KeyRing } from "../../src/authn/tokens/signing-keys.js";

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;
const ISSUER = "https://verdict.example";
const AUDIENCE = "verdict";
const TTL = 15 * 60_000;

const input = { issuer: ISSUER, audience: AUDIENCE, subject: "user-1", tenant: "acme", sessionId: "sess-1", roles: ["reader"], ttlMs: TTL };

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

/** Builds a token by hand: header and payload as given, signed by `signer` over header.payload. */
function forge(header: Record<string, unknown>, payload: Record<string, unknown>, signer: (data: Buffer) => Buffer): string {
  const signingInput = `${b64(header)}.${b64(payload)}`;
  return `${signingInput}.${signer(Buffer.from(signingInput)).toString("base64url")}`;
}

function ownPayload(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const iat = Math.floor(T0 / 1000);
  return { iss: ISSUER, sub: "user-1", aud: AUDIENCE, tenant_id: "acme", sid: "sess-1", iat, exp: iat + 900, jti: "j1", ...overrides };
}

function edSigner(ring: KeyRing): (data: Buffer) => Buffer {
  return (data) => sign(null, data, ring.active().signingKey);
}

function ownVerifier(ring: KeyRing, leewayMs = 0): TokenVerifier {
  return createTokenVerifier({ own: { issuer: ISSUER, audience: AUDIENCE, ring }, leewayMs, cacheSize: 0 });
}

function syncResult(result: TokenResult | Promise<TokenResult>): TokenResult {
  expect(result).not.toBeInstanceOf(Promise);
  return result as TokenResult;
}

function expectReason(result: TokenResult | Promise<TokenResult>, reason: string): void {
  const value = syncResult(result);
  expect(value.ok).toBe(false);
  expect(value.ok ? "" : value.reason).toBe(reason);
}

describe("own tokens: sign and verify", () => {
  const rings: Record<string, () => KeyRing> = {
    EdDSA: () => createSigningKeyRing({ alg: "EdDSA", retireAfterMs: HOUR, nowMs: T0 }),
    ES256: () => createSigningKeyRing({ alg: "ES256", retireAfterMs: HOUR, nowMs: T0 }),
    HS256: () => createHmacKeyRing({ secret: Buffer.from("a-shared-secret-of-at-least-32-bytes!!"), retireAfterMs: HOUR, nowMs: T0 }),
  };

  it.each(Object.keys(rings))("round-trips %s synchronously", (alg) => {
    const ring = rings[alg]();
    const signed = signAccessToken(ring, input, T0);
    const [header] = signed.token.split(".");
    expect(JSON.parse(Buffer.from(header, "base64url").toString())).toEqual({ alg, kid: ring.active().kid, typ: "JWT" });
    expect(signed.expiresAtMs).toBe(T0 + TTL);
    const result = syncResult(ownVerifier(ring).verify(signed.token, T0 + 1000));
    expect(result).toMatchObject({
      ok: true,
      claims: {
        issuer: ISSUER,
        subject: "user-1",
        audience: [AUDIENCE],
        tenant: "acme",
        sessionId: "sess-1",
        jti: signed.jti,
        own: true,
        issuedAtMs: T0,
        expiresAtMs: T0 + TTL,
        notBeforeMs: 0,
      },
    });
    expect(result.ok && result.claims.payload.roles).toEqual(["reader"]);
  });

  it.each(["EdDSA", "ES256"])("produces %s tokens jose verifies against the published JWKS", async (alg) => {
    const ring = rings[alg]();
    const { token } = signAccessToken(ring, input, Date.now());
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(ring.publicJwks(Date.now()) as never), {
      issuer: ISSUER,
      audience: AUDIENCE,
      algorithms: [alg],
    });
    expect(protectedHeader.alg).toBe(alg);
    expect(payload.sub).toBe("user-1");
  });

  it("uses a configurable tenant claim", () => {
    const ring = rings.EdDSA();
    const { token } = signAccessToken(ring, { ...input, tenantClaim: "org" }, T0);
    expect(JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString())).toHaveProperty("org", "acme");
    const verifier = createTokenVerifier({ own: { issuer: ISSUER, audience: AUDIENCE, ring, tenantClaim: "org" }, cacheSize: 0 });
    expect(syncResult(verifier.verify(token, T0))).toMatchObject({ ok: true, claims: { tenant: "acme" } });
  });

  it("refuses to sign a token outliving the key overlap", () => {
    const ring = rings.EdDSA();
    expect(() => signAccessToken(ring, { ...input, ttlMs: HOUR + 1 }, T0)).toThrow(/retireAfterMs/);
    expect(() => signAccessToken(ring, { ...input, tenantClaim: "sub" }, T0)).toThrow(/tenant claim/);
  });
});

describe("own tokens: rotation overlap", () => {
  it("accepts a token of the previous key until it retires, then reports an unknown key", () => {
    const ring = createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0 });
    const verifier = createTokenVerifier({ own: { issuer: ISSUER, audience: AUDIENCE, ring }, cacheSize: 0, leewayMs: 2 * HOUR });
    const old = signAccessToken(ring, input, T0).token;
    ring.rotate(T0 + 1000);
    const fresh = signAccessToken(ring, input, T0 + 1000).token;
    expect(syncResult(verifier.verify(old, T0 + 2000)).ok).toBe(true);
    expect(syncResult(verifier.verify(old, T0 + 1000 + HOUR - 1)).ok).toBe(true);
    expectReason(verifier.verify(old, T0 + 1000 + HOUR), "TOKEN_UNKNOWN_KEY");
    expect(syncResult(verifier.verify(fresh, T0 + 1000 + HOUR)).ok).toBe(true);
  });
});

describe("bad tokens: one reason each", () => {
  const ring = createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0 });
  const verifier = ownVerifier(ring);
  const kid = ring.active().kid;
  const good = signAccessToken(ring, input, T0).token;
  const [h, p, s] = good.split(".");

  it("accepts the untampered token (control)", () => {
    expect(syncResult(verifier.verify(good, T0)).ok).toBe(true);
  });

  it("rejects alg none, in any spelling, with an empty or present signature", () => {
    for (const alg of ["none", "None", "NONE"]) {
      expectReason(verifier.verify(`${b64({ alg, kid })}.${p}.`, T0), "TOKEN_ALGORITHM_NOT_ALLOWED");
      expectReason(verifier.verify(`${b64({ alg, kid })}.${p}.${s}`, T0), "TOKEN_ALGORITHM_NOT_ALLOWED");
    }
  });

  it("rejects HS256 signed with the ring's public key as the HMAC secret (algorithm confusion)", () => {
    const pem = ring.active().verificationKey.export({ format: "pem", type: "spki" }) as string;
    const forged = forge({ alg: "HS256", kid, typ: "JWT" }, ownPayload(), (data) => createHmac("sha256", pem).update(data).digest());
    expectReason(verifier.verify(forged, T0), "TOKEN_ALGORITHM_NOT_ALLOWED");
  });

  it("rejects a token whose alg differs from its key's", () => {
    const p256 = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    const forged = forge({ alg: "ES256", kid }, ownPayload(), (data) => sign("sha256", data, { key: p256, dsaEncoding: "ieee-p1363" }));
    expectReason(verifier.verify(forged, T0), "TOKEN_ALGORITHM_NOT_ALLOWED");
  });

  it("rejects unsupported algorithms", () => {
    expectReason(verifier.verify(`${b64({ alg: "HS512", kid })}.${p}.${s}`, T0), "TOKEN_ALGORITHM_NOT_ALLOWED");
  });

  it("rejects a wrong audience", () => {
    expectReason(verifier.verify(signAccessToken(ring, { ...input, audience: "someone-else" }, T0).token, T0), "TOKEN_WRONG_AUDIENCE");
    expectReason(verifier.verify(forge({ alg: "EdDSA", kid }, ownPayload({ aud: undefined }), edSigner(ring)), T0), "TOKEN_WRONG_AUDIENCE");
  });

  it("accepts any one matching audience of several", () => {
    expect(syncResult(verifier.verify(signAccessToken(ring, { ...input, audience: ["x", AUDIENCE] }, T0).token, T0)).ok).toBe(true);
  });

  it("rejects an unknown or missing issuer", () => {
    expectReason(verifier.verify(signAccessToken(ring, { ...input, issuer: "https://evil.example" }, T0).token, T0), "TOKEN_WRONG_ISSUER");
    expectReason(verifier.verify(forge({ alg: "EdDSA", kid }, ownPayload({ iss: undefined }), edSigner(ring)), T0), "TOKEN_WRONG_ISSUER");
  });

  it("rejects an expired token, exactly at exp and after", () => {
    expectReason(verifier.verify(good, T0 + TTL), "EXPIRED");
    expectReason(verifier.verify(good, T0 + TTL + 60_000), "EXPIRED");
    expect(syncResult(verifier.verify(good, T0 + TTL - 1)).ok).toBe(true);
  });

  it("accepts an expired token within the leeway only", () => {
    const lenient = ownVerifier(ring, 30_000);
    expect(syncResult(lenient.verify(good, T0 + TTL + 29_999)).ok).toBe(true);
    expectReason(lenient.verify(good, T0 + TTL + 30_000), "EXPIRED");
  });

  it("rejects nbf in the future beyond the leeway and accepts it within", () => {
    const token = forge({ alg: "EdDSA", kid }, ownPayload({ nbf: T0 / 1000 + 60 }), edSigner(ring));
    expectReason(verifier.verify(token, T0), "TOKEN_NOT_YET_VALID");
    expectReason(ownVerifier(ring, 59_000).verify(token, T0), "TOKEN_NOT_YET_VALID");
    expect(syncResult(ownVerifier(ring, 60_000).verify(token, T0))).toMatchObject({ ok: true, claims: { notBeforeMs: T0 + 60_000 } });
  });

  it("rejects iat in the future beyond the leeway", () => {
    const token = signAccessToken(ring, input, T0 + 10_000).token;
    expectReason(verifier.verify(token, T0), "TOKEN_NOT_YET_VALID");
    expect(syncResult(ownVerifier(ring, 10_000).verify(token, T0)).ok).toBe(true);
  });

  it("rejects a tampered payload", () => {
    const tampered = `${h}.${b64(ownPayload({ sub: "root" }))}.${s}`;
    expectReason(verifier.verify(tampered, T0), "TOKEN_BAD_SIGNATURE");
  });

  it("rejects a tampered signature", () => {
    const bytes = Buffer.from(s, "base64url");
    bytes[5] ^= 1;
    expectReason(verifier.verify(`${h}.${p}.${bytes.toString("base64url")}`, T0), "TOKEN_BAD_SIGNATURE");
    expectReason(verifier.verify(`${h}.${p}.${s.slice(0, -2)}`, T0), "TOKEN_BAD_SIGNATURE");
  });

  it("rejects a token signed by a key outside the ring under the ring's kid", () => {
    const stranger = createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0 });
    expectReason(verifier.verify(forge({ alg: "EdDSA", kid }, ownPayload(), edSigner(stranger)), T0), "TOKEN_BAD_SIGNATURE");
  });

  it("rejects an unknown or missing kid", () => {
    expectReason(verifier.verify(forge({ alg: "EdDSA", kid: "nope" }, ownPayload(), edSigner(ring)), T0), "TOKEN_UNKNOWN_KEY");
    expectReason(verifier.verify(forge({ alg: "EdDSA" }, ownPayload(), edSigner(ring)), T0), "TOKEN_UNKNOWN_KEY");
  });

  it("checks claims only after the signature", () => {
    const stranger = createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0 });
    expectReason(verifier.verify(forge({ alg: "EdDSA", kid }, ownPayload({ aud: "x", exp: 1 }), edSigner(stranger)), T0), "TOKEN_BAD_SIGNATURE");
  });

  const sig = edSigner(ring);
  const malformed: Array<[string, string]> = [
    ["empty string", ""],
    ["one segment", "abc"],
    ["two segments", `${h}.${p}`],
    ["four segments", `${h}.${p}.${s}.${s}`],
    ["empty header", `.${p}.${s}`],
    ["non-base64url header", `${h}!.${p}.${s}`],
    ["header not JSON", `${Buffer.from("{alg:").toString("base64url")}.${p}.${s}`],
    ["header an array", `${b64(["EdDSA"])}.${p}.${s}`],
    ["header a string", `${b64("EdDSA")}.${p}.${s}`],
    ["header without alg", `${b64({ kid })}.${p}.${s}`],
    ["alg not a string", `${b64({ alg: 1, kid })}.${p}.${s}`],
    ["crit header", forge({ alg: "EdDSA", kid, crit: ["b64"], b64: false }, ownPayload(), sig)],
    ["kid not a string", `${b64({ alg: "EdDSA", kid: 7 })}.${p}.${s}`],
    ["payload not JSON", `${h}.${Buffer.from("not json").toString("base64url")}.${s}`],
    ["payload null", `${h}.${b64(null)}.${s}`],
    ["payload a number", `${h}.${b64(42)}.${s}`],
    ["empty payload", `${h}..${s}`],
    ["empty signature", `${h}.${p}.`],
    ["padded signature", `${h}.${p}.${s}==`],
    ["impossible base64 length", `${h}.${p}.${s}AAA`],
    ["non-canonical signature encoding", `${h}.${p}.${s.slice(0, -1)}${s.endsWith("A") ? "B" : String.fromCharCode(s.charCodeAt(s.length - 1) ^ 1)}`],
    ["too long", `${h}.${"A".repeat(20_000)}.${s}`],
    ["issuer not a string", forge({ alg: "EdDSA", kid }, ownPayload({ iss: 5 }), sig)],
    ["no subject", forge({ alg: "EdDSA", kid }, ownPayload({ sub: undefined }), sig)],
    ["no exp", forge({ alg: "EdDSA", kid }, ownPayload({ exp: undefined }), sig)],
    ["exp a string", forge({ alg: "EdDSA", kid }, ownPayload({ exp: "2099" }), sig)],
    ["aud a number", forge({ alg: "EdDSA", kid }, ownPayload({ aud: 3 }), sig)],
    ["tenant not a string", forge({ alg: "EdDSA", kid }, ownPayload({ tenant_id: ["a"] }), sig)],
    ["blank subject", forge({ alg: "EdDSA", kid }, ownPayload({ sub: " " }), sig)],
    ["subject with a NUL", forge({ alg: "EdDSA", kid }, ownPayload({ sub: "user-1\u0000" }), sig)],
    ["over-long subject", forge({ alg: "EdDSA", kid }, ownPayload({ sub: "u".repeat(256) }), sig)],
    ["tenant not a tenant id", forge({ alg: "EdDSA", kid }, ownPayload({ tenant_id: "ACME " }), sig)],
    ["session id with a newline", forge({ alg: "EdDSA", kid }, ownPayload({ sid: "sess-1\n" }), sig)],
  ];

  it.each(malformed)("rejects a malformed token: %s", (_name, token) => {
    expectReason(verifier.verify(token, T0), "MALFORMED_CREDENTIAL");
  });

  it("never echoes the token in a failure message", () => {
    for (const [, token] of malformed) {
      const result = syncResult(verifier.verify(token, T0));
      if (!result.ok && token.length > 8) expect(result.message).not.toContain(token);
    }
  });
});

describe("HS256 ring", () => {
  const secret = Buffer.from("another-shared-secret-of-32-bytes-or-more");
  const ring = createHmacKeyRing({ secret, retireAfterMs: HOUR, nowMs: T0 });
  const verifier = ownVerifier(ring);

  it("rejects asymmetric algorithms for an HS256 issuer", () => {
    const ed = createPrivateKey(generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }));
    const forged = forge({ alg: "EdDSA", kid: ring.active().kid }, ownPayload(), (data) => sign(null, data, ed as KeyObject));
    expectReason(verifier.verify(forged, T0), "TOKEN_ALGORITHM_NOT_ALLOWED");
  });

  it("rejects a token HMAC'd with another secret", () => {
    const forged = forge({ alg: "HS256", kid: ring.active().kid }, ownPayload(), (data) => createHmac("sha256", "x".repeat(40)).update(data).digest());
    expectReason(verifier.verify(forged, T0), "TOKEN_BAD_SIGNATURE");
  });
});

describe("verifier options", () => {
  const ring = createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0 });

  it("refuses invalid configuration at creation", () => {
    expect(() => createTokenVerifier({})).toThrow(/at least one/);
    expect(() => createTokenVerifier({ own: { issuer: ISSUER, audience: [], ring } })).toThrow(/audience/);
    expect(() => createTokenVerifier({ own: { issuer: ISSUER, audience: AUDIENCE, ring }, leewayMs: -1 })).toThrow(/leewayMs/);
    expect(() => createTokenVerifier({ own: { issuer: ISSUER, audience: AUDIENCE, ring }, cacheSize: 1.5 })).toThrow(/cacheSize/);
    const external = { issuer: "https://idp.example", audience: "api", jwksUrl: "https://idp.example/jwks", algorithms: ["RS256" as const] };
    expect(() => createTokenVerifier({ external: [external, external] })).toThrow(/twice/);
    expect(() => createTokenVerifier({ external: [{ ...external, algorithms: ["HS256" as never] }] })).toThrow(/HS256 is not allowed/);
    expect(() => createTokenVerifier({ external: [{ ...external, algorithms: [] }] })).toThrow(/must not be empty/);
  });
});
