import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createHmacKeyRing, createSigningKeyRing } from "../../src/authn/tokens/signing-keys.js";
import { parseJwtSecret, parseKeyEncryptionKey } from "../../src/config/secrets.js";
import type { SigningKeyRecord } from "../../src/core/signing-key-record.js";

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;

describe("signing key ring", () => {
  it.each(["EdDSA", "ES256"] as const)("generates an active %s key with a url-safe kid", (alg) => {
    const ring = createSigningKeyRing({ alg, retireAfterMs: HOUR, nowMs: T0 });
    const key = ring.active();
    expect(ring.alg).toBe(alg);
    expect(key.alg).toBe(alg);
    expect(key.kid).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(key.signingKey.type).toBe("private");
    expect(key.verificationKey.type).toBe("public");
    expect(ring.verificationKey(key.kid, T0)).toBe(key);
  });

  it("defaults to EdDSA", () => {
    expect(createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0 }).alg).toBe("EdDSA");
  });

  it("keeps a rotated key for verification until retireAfterMs has passed, then drops it", () => {
    const ring = createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0 });
    const first = ring.active();
    const second = ring.rotate(T0 + 10);
    expect(second.kid).not.toBe(first.kid);
    expect(ring.active()).toBe(second);
    expect(ring.verificationKey(first.kid, T0 + 10 + HOUR - 1)?.retiredAtMs).toBe(T0 + 10);
    expect(ring.verificationKey(first.kid, T0 + 10 + HOUR)).toBeUndefined();
    expect(ring.publicJwks(T0 + 20).keys.map((k) => k.kid).sort()).toEqual([first.kid, second.kid].sort());
    ring.rotate(T0 + 10 + HOUR);
    expect(ring.exportRecords().map((r) => r.kid)).not.toContain(first.kid);
    expect(ring.exportRecords()).toHaveLength(2);
  });

  it("exports a JWKS with public members only", () => {
    for (const alg of ["EdDSA", "ES256"] as const) {
      const ring = createSigningKeyRing({ alg, retireAfterMs: HOUR, nowMs: T0 });
      ring.rotate(T0 + 1);
      const jwks = ring.publicJwks(T0 + 2);
      expect(jwks.keys).toHaveLength(2);
      for (const jwk of jwks.keys) {
        expect(jwk).not.toHaveProperty("d");
        expect(jwk.use).toBe("sig");
        expect(jwk.alg).toBe(alg);
        expect(Object.keys(jwk).sort()).toEqual(alg === "EdDSA" ? ["alg", "crv", "kid", "kty", "use", "x"] : ["alg", "crv", "kid", "kty", "use", "x", "y"]);
      }
      expect(JSON.stringify(jwks)).not.toMatch(/"d"/);
    }
  });
});

describe("signing key records", () => {
  const kek = randomBytes(32);

  it.each(["EdDSA", "ES256"] as const)("round-trips %s keys encrypted at rest", (alg) => {
    const ring = createSigningKeyRing({ alg, retireAfterMs: HOUR, nowMs: T0, keyEncryptionKey: kek });
    ring.rotate(T0 + 5);
    const records = ring.exportRecords();
    for (const record of records) {
      expect(record.encrypted).toBe(true);
      expect(record.privateKey).not.toContain("PRIVATE KEY");
      expect(JSON.stringify(record.publicJwk)).not.toMatch(/"d"/);
    }
    const loaded = createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0 + 6, keyEncryptionKey: kek, records });
    expect(loaded.alg).toBe(alg);
    expect(loaded.active().kid).toBe(ring.active().kid);
    const original = ring.active().signingKey.export({ format: "der", type: "pkcs8" });
    expect(loaded.active().signingKey.export({ format: "der", type: "pkcs8" }).equals(original)).toBe(true);
    expect(loaded.verificationKey(records[1].kid, T0 + 6)?.retiredAtMs).toBe(T0 + 5);
  });

  it("encrypts with a fresh IV every time", () => {
    const ring = createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0, keyEncryptionKey: kek });
    expect(ring.exportRecords()[0].privateKey).not.toBe(ring.exportRecords()[0].privateKey);
  });

  it("refuses a wrong key-encryption key with a clear error", () => {
    const records = createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0, keyEncryptionKey: kek }).exportRecords();
    expect(() => createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0, keyEncryptionKey: randomBytes(32), records })).toThrow(
      /cannot decrypt private key \(wrong VERDICT_KEY_ENCRYPTION_KEY or tampered record\)/,
    );
  });

  it("binds the ciphertext to its kid", () => {
    const [record] = createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0, keyEncryptionKey: kek }).exportRecords();
    const moved: SigningKeyRecord = { ...record, kid: "another-kid", publicJwk: { ...record.publicJwk, kid: "another-kid" } };
    expect(() => createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0, keyEncryptionKey: kek, records: [moved] })).toThrow(/cannot decrypt/);
  });

  it("refuses an encrypted record when no key-encryption key is given", () => {
    const records = createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0, keyEncryptionKey: kek }).exportRecords();
    expect(() => createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0, records })).toThrow(/encrypted but no VERDICT_KEY_ENCRYPTION_KEY/);
  });

  it("stores plain PKCS8 PEM without a key-encryption key, and loads it", () => {
    const ring = createSigningKeyRing({ alg: "ES256", retireAfterMs: HOUR, nowMs: T0 });
    const records = ring.exportRecords();
    expect(records[0].encrypted).toBe(false);
    expect(records[0].privateKey).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0, records }).active().kid).toBe(ring.active().kid);
  });

  it("refuses a record whose public key does not match its private key", () => {
    const [a] = createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0 }).exportRecords();
    const [b] = createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0 }).exportRecords();
    expect(() => createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0, records: [{ ...a, publicJwk: b.publicJwk }] })).toThrow(/does not match/);
  });

  it("requires exactly one active record", () => {
    const ring = createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0 });
    ring.rotate(T0 + 1);
    const records = ring.exportRecords();
    expect(() => createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0, records: records.map((r) => ({ ...r, retiredAtMs: T0 })) })).toThrow(/exactly one active/);
    expect(() => createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0, records: records.map((r) => ({ ...r, retiredAtMs: null })) })).toThrow(/exactly one active/);
  });
});

describe("configuration secrets", () => {
  const bytes = randomBytes(32);

  it("parses a key-encryption key from hex, base64 and base64url", () => {
    expect(parseKeyEncryptionKey(bytes.toString("hex")).equals(bytes)).toBe(true);
    expect(parseKeyEncryptionKey(bytes.toString("base64")).equals(bytes)).toBe(true);
    expect(parseKeyEncryptionKey(bytes.toString("base64url")).equals(bytes)).toBe(true);
  });

  it("refuses a key-encryption key that is not 32 bytes", () => {
    expect(() => parseKeyEncryptionKey(randomBytes(16).toString("base64"))).toThrow(/must decode to 32 bytes, got 16/);
    expect(() => parseKeyEncryptionKey("not a key!")).toThrow(/VERDICT_KEY_ENCRYPTION_KEY must be 32 bytes/);
    expect(() => createSigningKeyRing({ retireAfterMs: HOUR, nowMs: T0, keyEncryptionKey: randomBytes(31) })).toThrow(/32 bytes/);
  });

  it("refuses an HS256 secret shorter than 32 bytes", () => {
    expect(() => parseJwtSecret("x".repeat(31))).toThrow(/VERDICT_JWT_SECRET must be at least 32 bytes, got 31/);
    expect(parseJwtSecret("x".repeat(32))).toHaveLength(32);
    expect(() => createHmacKeyRing({ secret: Buffer.alloc(16), retireAfterMs: HOUR, nowMs: T0 })).toThrow(/at least 32 bytes/);
  });

  it("names an HS256 secret by a kid that does not reveal it, and refuses to rotate or export it", () => {
    const secret = parseJwtSecret("s".repeat(40));
    const ring = createHmacKeyRing({ secret, retireAfterMs: HOUR, nowMs: T0 });
    expect(ring.alg).toBe("HS256");
    expect(ring.active().kid).toBe(createHmacKeyRing({ secret, retireAfterMs: HOUR, nowMs: T0 }).active().kid);
    expect(ring.active().kid).not.toContain("sss");
    expect(ring.publicJwks(T0).keys).toEqual([]);
    expect(() => ring.rotate(T0)).toThrow(/cannot rotate/);
    expect(() => ring.exportRecords()).toThrow(/VERDICT_JWT_SECRET/);
  });

  it("refuses a non-positive retireAfterMs", () => {
    expect(() => createSigningKeyRing({ retireAfterMs: 0, nowMs: T0 })).toThrow(/retireAfterMs/);
  });
});
