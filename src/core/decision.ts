/**
 * A decision is a value, never an exception: every Check answers with one.
 */
import type { RateAnswer } from "./rate-limit.js";

/** Stable reason codes; the API maps each to the proto enum value of the same name. */
export type ReasonCode =
  | "ALLOWED"
  | "UNAUTHENTICATED"
  | "MALFORMED_CREDENTIAL"
  | "UNKNOWN_CREDENTIAL"
  | "FORBIDDEN"
  | "WRONG_TENANT"
  | "UNKNOWN_TENANT"
  | "EXPIRED"
  | "REVOKED"
  | "DISABLED"
  | "INVALID_REQUEST"
  | "RATE_LIMITED"
  | "INTERNAL_ERROR"
  | "STALE"
  | "TOKEN_BAD_SIGNATURE"
  | "TOKEN_ALGORITHM_NOT_ALLOWED"
  | "TOKEN_WRONG_AUDIENCE"
  | "TOKEN_WRONG_ISSUER"
  | "TOKEN_NOT_YET_VALID"
  | "TOKEN_UNKNOWN_KEY";

/** Who a credential identifies, as seen in one tenant. */
export interface PrincipalView {
  readonly kind: "user" | "api_key";
  readonly userId: string;
  readonly username: string;
  /** Public key id for API keys, "" for users. */
  readonly keyId: string;
  readonly tenant: string;
  /** Roles held in that tenant, including roles bound in every tenant. */
  readonly roles: readonly string[];
}

/** The answer to one Check. */
export interface Decision {
  readonly allowed: boolean;
  readonly reason: ReasonCode;
  /** Human-readable; never contains a secret. */
  readonly message: string;
  /** Undefined when the credential could not be resolved to a principal. */
  readonly principal: PrincipalView | undefined;
  /** The policy version the answer was computed at. */
  readonly version: number;
  /** The credential's rate-limit standing, when its rate was counted. */
  readonly rate?: RateAnswer;
}

/** Builds a denial. */
export function deny(
  reason: Exclude<ReasonCode, "ALLOWED">,
  message: string,
  version: number,
  principal?: PrincipalView,
): Decision {
  return { allowed: false, reason, message, principal, version };
}
