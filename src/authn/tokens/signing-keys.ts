/**
 * Verdict's own token signing keys: a ring with one active signing key and the previous keys that
 * still verify tokens they signed, and their conversion to and from the stored form
 * (core/signing-key-record.ts).
 *
 * At rest: with a key-encryption key (VERDICT_KEY_ENCRYPTION_KEY) private keys are sealed with
 * AES-256-GCM. Without one they are stored as plain PKCS8 PEM, and anyone who can read the stored
 * records can mint tokens: set a key-encryption key in production.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  generateKeyPairSync,
  randomBytes,
  type KeyObject,
} from "node:crypto";
import type { AsymmetricSigningAlgorithm, PublicJwk, SigningKeyRecord } from "../../core/signing-key-record.js";

/** Every algorithm Verdict may sign its own tokens with. */
export type OwnAlgorithm = AsymmetricSigningAlgorithm | "HS256";

/** A JSON Web Key Set: `{ keys: [...] }`. */
export interface PublicJwks {
  readonly keys: readonly PublicJwk[];
}

/** One key of a ring. `signingKey` is private (or the shared secret); `verificationKey` is public (or the secret). */
export interface RingKey {
  readonly kid: string;
  readonly alg: OwnAlgorithm;
  readonly signingKey: KeyObject;
  readonly verificationKey: KeyObject;
  readonly createdAtMs: number;
  /** When the key stopped signing; null while it is the active key. */
  readonly retiredAtMs: number | null;
}

/**
 * The keys Verdict signs and verifies its own tokens with. A retired key keeps verifying until
 * `retiredAtMs + retireAfterMs`; `retireAfterMs` is also the longest token lifetime the ring signs.
 */
export interface KeyRing {
  readonly alg: OwnAlgorithm;
  readonly retireAfterMs: number;
  /** The key that signs new tokens. */
  active(): RingKey;
  /** The key with this kid if it may still verify tokens at `nowMs`, otherwise undefined. */
  verificationKey(kid: string, nowMs: number): RingKey | undefined;
  /**
   * Makes a fresh key the active one, retires the current one and drops keys whose overlap has
   * passed. Returns the new active key. Throws for an HS256 ring (its secret comes from config).
   */
  rotate(nowMs: number): RingKey;
  /** The public keys still valid for verification at `nowMs`, for `/.well-known/jwks.json`. Empty for HS256. */
  publicJwks(nowMs: number): PublicJwks;
  /** The keys in storage form, encrypted when the ring holds a key-encryption key. Throws for HS256. */
  exportRecords(): SigningKeyRecord[];
}

/** Options for an asymmetric key ring: a new one (`alg`) or one loaded from `records`. */
export interface SigningKeyRingOptions {
  /**
   * Algorithm of newly generated keys; default EdDSA, or the active record's algorithm when loading.
   * Loaded keys keep their own algorithm, so a ring can move from one algorithm to the other.
   */
  readonly alg?: AsymmetricSigningAlgorithm;
  /** How long a retired key keeps verifying; must be at least the longest access-token lifetime. */
  readonly retireAfterMs: number;
  /** Creation time of the first key when no records are given. */
  readonly nowMs: number;
  /** 32-byte key-encryption key (parsed by config/secrets.ts); without it records hold plain PEM. */
  readonly keyEncryptionKey?: Buffer;
  /** Previously exported records; exactly one must be active (retiredAtMs null). */
  readonly records?: readonly SigningKeyRecord[];
}

/** Options for an HS256 ring: one shared secret (parsed by config/secrets.ts). */
export interface HmacKeyRingOptions {
  readonly secret: Buffer;
  /** Longest access-token lifetime the ring signs. */
  readonly retireAfterMs: number;
  readonly nowMs: number;
}

const MIN_SECRET_BYTES = 32;
const KEK_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Creates an EdDSA (default) or ES256 key ring, new or loaded from stored records. */
export function createSigningKeyRing(options: SigningKeyRingOptions): KeyRing {
  const retireAfterMs = checkRetireAfter(options.retireAfterMs);
  const kek = options.keyEncryptionKey;
  if (kek !== undefined && kek.length !== KEK_BYTES) {
    throw new Error(`key-encryption key must be ${KEK_BYTES} bytes, got ${kek.length}`);
  }
  const keys: AsymmetricKey[] = options.records
    ? options.records.map((record) => keyFromRecord(record, kek))
    : [generateKey(options.alg ?? "EdDSA", options.nowMs)];
  const activeKeys = keys.filter((k) => k.retiredAtMs === null);
  if (activeKeys.length !== 1) {
    throw new Error("signing key records must hold exactly one active key (retiredAtMs null)");
  }
  const alg = options.alg ?? activeKeys[0].alg;
  if (new Set(keys.map((k) => k.kid)).size !== keys.length) {
    throw new Error("signing key records hold a duplicate kid");
  }

  const stillVerifies = (key: RingKey, nowMs: number): boolean =>
    key.retiredAtMs === null || nowMs < key.retiredAtMs + retireAfterMs;
  const activeKey = (): AsymmetricKey => keys.find((k) => k.retiredAtMs === null) as AsymmetricKey;

  return {
    get alg() {
      return activeKey().alg;
    },
    retireAfterMs,
    active: activeKey,
    verificationKey(kid, nowMs) {
      const key = keys.find((k) => k.kid === kid);
      return key && stillVerifies(key, nowMs) ? key : undefined;
    },
    rotate(nowMs) {
      const current = activeKey();
      const next = generateKey(alg, nowMs);
      const kept = keys
        .map((k) => (k === current ? { ...k, retiredAtMs: nowMs } : k))
        .filter((k) => stillVerifies(k, nowMs));
      keys.splice(0, keys.length, next, ...kept);
      return next;
    },
    publicJwks(nowMs) {
      return { keys: keys.filter((k) => stillVerifies(k, nowMs)).map((k) => k.publicJwk) };
    },
    exportRecords() {
      return keys.map((k) => recordFromKey(k, kek));
    },
  };
}

/**
 * Creates an HS256 ring around one shared secret. Every replica and every verifier must hold the
 * same secret; rotating it means restarting with a new VERDICT_JWT_SECRET.
 */
export function createHmacKeyRing(options: HmacKeyRingOptions): KeyRing {
  const retireAfterMs = checkRetireAfter(options.retireAfterMs);
  if (options.secret.length < MIN_SECRET_BYTES) {
    throw new Error(`HS256 secret must be at least ${MIN_SECRET_BYTES} bytes, got ${options.secret.length}`);
  }
  const secret = createSecretKey(Buffer.from(options.secret));
  // The kid names the secret without revealing it: a domain-separated hash of a >= 32-byte secret.
  const kid = createHash("sha256").update("verdict-hs256-kid\0").update(options.secret).digest("base64url").slice(0, 16);
  const key: RingKey = {
    kid,
    alg: "HS256",
    signingKey: secret,
    verificationKey: secret,
    createdAtMs: options.nowMs,
    retiredAtMs: null,
  };
  return {
    alg: "HS256",
    retireAfterMs,
    active: () => key,
    verificationKey: (candidate) => (candidate === kid ? key : undefined),
    rotate() {
      throw new Error("an HS256 key ring cannot rotate: restart with a new VERDICT_JWT_SECRET");
    },
    publicJwks: () => ({ keys: [] }),
    exportRecords() {
      throw new Error("an HS256 key ring has no records to store: its secret comes from VERDICT_JWT_SECRET");
    },
  };
}

interface AsymmetricKey extends RingKey {
  readonly alg: AsymmetricSigningAlgorithm;
  readonly publicJwk: PublicJwk;
}

function checkRetireAfter(ms: number): number {
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`retireAfterMs must be a positive number, got ${ms}`);
  return ms;
}

function generateKey(alg: AsymmetricSigningAlgorithm, nowMs: number): AsymmetricKey {
  const { privateKey, publicKey } =
    alg === "EdDSA" ? generateKeyPairSync("ed25519") : generateKeyPairSync("ec", { namedCurve: "P-256" });
  const kid = randomBytes(12).toString("base64url");
  return { kid, alg, signingKey: privateKey, verificationKey: publicKey, publicJwk: toPublicJwk(publicKey, kid, alg), createdAtMs: nowMs, retiredAtMs: null };
}

function toPublicJwk(publicKey: KeyObject, kid: string, alg: AsymmetricSigningAlgorithm): PublicJwk {
  const jwk = publicKey.export({ format: "jwk" });
  if (alg === "EdDSA") {
    if (jwk.kty !== "OKP" || jwk.crv !== "Ed25519" || !jwk.x) throw new Error(`key ${kid} is not an Ed25519 key`);
    return { kty: "OKP", crv: "Ed25519", x: jwk.x, kid, alg, use: "sig" };
  }
  if (jwk.kty !== "EC" || jwk.crv !== "P-256" || !jwk.x || !jwk.y) throw new Error(`key ${kid} is not a P-256 key`);
  return { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y, kid, alg, use: "sig" };
}

function recordFromKey(key: AsymmetricKey, kek: Buffer | undefined): SigningKeyRecord {
  const base = { kid: key.kid, alg: key.alg, publicJwk: key.publicJwk, createdAtMs: key.createdAtMs, retiredAtMs: key.retiredAtMs };
  if (kek === undefined) {
    return { ...base, privateKey: key.signingKey.export({ format: "pem", type: "pkcs8" }) as string, encrypted: false };
  }
  const der = key.signingKey.export({ format: "der", type: "pkcs8" });
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", kek, iv);
  cipher.setAAD(Buffer.from(key.kid, "utf8"));
  const sealed = Buffer.concat([iv, cipher.update(der), cipher.final(), cipher.getAuthTag()]);
  return { ...base, privateKey: sealed.toString("base64"), encrypted: true };
}

function keyFromRecord(record: SigningKeyRecord, kek: Buffer | undefined): AsymmetricKey {
  if (record.alg !== "EdDSA" && record.alg !== "ES256") {
    throw new Error(`signing key ${record.kid} has unsupported alg ${String(record.alg)}`);
  }
  const signingKey = record.encrypted
    ? createPrivateKey({ key: decryptPrivateKey(record, kek), format: "der", type: "pkcs8" })
    : createPrivateKey({ key: record.privateKey, format: "pem" });
  const verificationKey = createPublicKey(signingKey);
  const publicJwk = toPublicJwk(verificationKey, record.kid, record.alg);
  if (publicJwk.x !== record.publicJwk.x || publicJwk.y !== record.publicJwk.y) {
    throw new Error(`signing key ${record.kid}: stored public key does not match its private key`);
  }
  return { kid: record.kid, alg: record.alg, signingKey, verificationKey, publicJwk, createdAtMs: record.createdAtMs, retiredAtMs: record.retiredAtMs };
}

function decryptPrivateKey(record: SigningKeyRecord, kek: Buffer | undefined): Buffer {
  if (kek === undefined) {
    throw new Error(`signing key ${record.kid} is encrypted but no VERDICT_KEY_ENCRYPTION_KEY was given`);
  }
  const sealed = Buffer.from(record.privateKey, "base64");
  if (sealed.length <= IV_BYTES + TAG_BYTES) throw new Error(`signing key ${record.kid}: encrypted private key is truncated`);
  const decipher = createDecipheriv("aes-256-gcm", kek, sealed.subarray(0, IV_BYTES));
  decipher.setAAD(Buffer.from(record.kid, "utf8"));
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw new Error(`signing key ${record.kid}: cannot decrypt private key (wrong VERDICT_KEY_ENCRYPTION_KEY or tampered record)`);
  }
}
