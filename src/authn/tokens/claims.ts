/**
 * The claims of a verified access token: what the verifier produces and the claims cache holds.
 */

/** Claims of a verified token. Absent optional claims are 0 (times) or "" (strings). Read-only. */
export interface VerifiedClaims {
  readonly issuer: string;
  readonly subject: string;
  readonly audience: readonly string[];
  readonly expiresAtMs: number;
  readonly issuedAtMs: number;
  readonly notBeforeMs: number;
  /** From the issuer's tenant claim; "" when the token has none. */
  readonly tenant: string;
  /** The `sid` claim; "" when the token has none. */
  readonly sessionId: string;
  /** The `jti` claim; "" when the token has none. */
  readonly jti: string;
  /** True when signed by Verdict's own key ring. */
  readonly own: boolean;
  /** The whole decoded payload. */
  readonly payload: Readonly<Record<string, unknown>>;
}
