/**
 * API key format: `vk_<key id>_<secret><checksum>`.
 *
 * - `vk_` makes keys recognisable (secret scanners, logs);
 * - the key id (12 characters of base32, 60 bits) is public: it names the key in listings and logs;
 * - the secret is 32 characters of base62 (190 bits) from the system CSPRNG;
 * - the checksum is the CRC-32 of everything before it, as 6 base62 characters, so a mistyped or
 *   random string is rejected before any lookup.
 *
 * Only the SHA-256 of the whole key is stored: the secret has enough entropy that a slow hash adds
 * nothing, and a fast one keeps Check at microseconds.
 */
import { hash, randomBytes, randomInt } from "node:crypto";
import { crc32 } from "node:zlib";

/** The prefix every Verdict API key starts with. */
export const API_KEY_PREFIX = "vk_";

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ID_LENGTH = 12;
const SECRET_LENGTH = 32;
const CHECKSUM_LENGTH = 6;
/** Length of every well-formed key. */
export const API_KEY_LENGTH = API_KEY_PREFIX.length + ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH;
const KEY_RE = new RegExp(`^vk_[a-z2-7]{${ID_LENGTH}}_[0-9A-Za-z]{${SECRET_LENGTH + CHECKSUM_LENGTH}}$`);
const ID_RE = new RegExp(`^[a-z2-7]{${ID_LENGTH}}$`);

function randomString(alphabet: string, length: number): string {
  let out = "";
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

function checksum(body: string): string {
  let n = crc32(body);
  let out = "";
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

/** A freshly minted key: the full secret (shown once) and what is stored. */
export interface MintedKey {
  readonly id: string;
  readonly secret: string;
  readonly secretHash: string;
}

/** Makes a new public key id. */
export function newKeyId(): string {
  return randomString(BASE32, ID_LENGTH);
}

/** True when `id` has the shape of a key id. */
export function isKeyId(id: string): boolean {
  return ID_RE.test(id);
}

/** Mints a key with the given id (a new one by default). */
export function mintApiKey(id: string = newKeyId()): MintedKey {
  // randomBytes first so a failing entropy source throws before anything else happens.
  randomBytes(1);
  const body = `${API_KEY_PREFIX}${id}_${randomString(BASE62, SECRET_LENGTH)}`;
  const secret = body + checksum(body);
  return { id, secret, secretHash: hashApiKey(secret) };
}

/** Hex SHA-256 of a full key string (one-shot: no Hash object per Check for the GC to collect). */
export function hashApiKey(key: string): string {
  return hash("sha256", key, "hex");
}

/** True when the string starts like an API key (so it should be parsed as one). */
export function looksLikeApiKey(credential: string): boolean {
  return credential.startsWith(API_KEY_PREFIX);
}

/** Why a string is not a valid key, or undefined when it is well formed with a valid checksum. */
export function apiKeyProblem(key: string): string | undefined {
  if (key.length !== API_KEY_LENGTH) return "API key has the wrong length";
  if (!KEY_RE.test(key)) return "API key has the wrong format";
  const split = key.length - CHECKSUM_LENGTH;
  if (checksum(key.slice(0, split)) !== key.slice(split)) return "API key checksum does not match";
  return undefined;
}

/** The public key id inside a well-formed key. */
export function apiKeyId(key: string): string {
  return key.slice(API_KEY_PREFIX.length, API_KEY_PREFIX.length + ID_LENGTH);
}
