/**
 * Parsers of the secret settings (VERDICT_KEY_ENCRYPTION_KEY, VERDICT_JWT_SECRET): configuration
 * checks them at start, the token authority turns them into key material. Errors name the variable
 * and never echo the value.
 */

const KEK_BYTES = 32;
const MIN_SECRET_BYTES = 32;

/**
 * Parses VERDICT_KEY_ENCRYPTION_KEY: 32 bytes as 64 hex characters or as base64 / base64url.
 * Throws with a message naming the variable when the value is not exactly 32 bytes.
 */
export function parseKeyEncryptionKey(value: string): Buffer {
  const text = value.trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, "hex");
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) {
    const bytes = Buffer.from(text.replace(/-/g, "+").replace(/_/g, "/"), "base64");
    if (bytes.length === KEK_BYTES) return bytes;
    throw new Error(`VERDICT_KEY_ENCRYPTION_KEY must decode to ${KEK_BYTES} bytes, got ${bytes.length}`);
  }
  throw new Error(`VERDICT_KEY_ENCRYPTION_KEY must be ${KEK_BYTES} bytes given as 64 hex characters or base64`);
}

/**
 * Parses VERDICT_JWT_SECRET: its UTF-8 bytes are the HS256 secret. Throws when shorter than
 * 32 bytes, since a short HMAC secret can be brute-forced from any token.
 */
export function parseJwtSecret(value: string): Buffer {
  const bytes = Buffer.from(value, "utf8");
  if (bytes.length < MIN_SECRET_BYTES) {
    throw new Error(`VERDICT_JWT_SECRET must be at least ${MIN_SECRET_BYTES} bytes, got ${bytes.length}`);
  }
  return bytes;
}
