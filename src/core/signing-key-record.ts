/**
 * The stored form of Verdict's own token signing keys, shared by the store (which keeps the
 * records) and the key ring in authn/tokens (which creates and reads them).
 */

/** Asymmetric algorithms Verdict signs its own tokens with. */
export type AsymmetricSigningAlgorithm = "EdDSA" | "ES256";

/** A public JSON Web Key as published in the JWKS: never holds private members. */
export interface PublicJwk {
  readonly kty: "OKP" | "EC";
  readonly crv: "Ed25519" | "P-256";
  readonly x: string;
  readonly y?: string;
  readonly kid: string;
  readonly alg: AsymmetricSigningAlgorithm;
  readonly use: "sig";
}

/**
 * How a key is stored. `privateKey` is PKCS8 PEM in plain text when `encrypted` is false, and
 * base64 of `iv (12 bytes) || ciphertext || GCM tag (16 bytes)` over the PKCS8 DER, with the kid as
 * additional authenticated data, when `encrypted` is true.
 */
export interface SigningKeyRecord {
  readonly kid: string;
  readonly alg: AsymmetricSigningAlgorithm;
  readonly publicJwk: PublicJwk;
  readonly privateKey: string;
  readonly encrypted: boolean;
  readonly createdAtMs: number;
  readonly retiredAtMs: number | null;
}
