/**
 * The CheckResponses the adapter sends: the HTTP status and google.rpc.Code of each denial reason,
 * the denial body and headers, and the headers added and removed on allow.
 */
import { HeaderValueOption_HeaderAppendAction, type HeaderValueOption } from "../../../gen/envoy/config/core/v3/base_pb.js";
import type { CheckResponse, DeniedHttpResponse, OkHttpResponse } from "../../../gen/envoy/service/auth/v3/external_auth_pb.js";
import type { StatusCode } from "../../../gen/envoy/type/v3/http_status_pb.js";
import type { PrincipalView, ReasonCode } from "../../core/decision.js";
import type { RateAnswer } from "../../core/rate-limit.js";
import { Code } from "../code.js";
import type { UpstreamStrip } from "./credentials.js";
import type { CompiledRules } from "./rules/model.js";

const OVERWRITE = HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD;
/** www-authenticate challenge when no credential was sent. */
export const CHALLENGE_MISSING = 'Bearer realm="verdict"';
/** www-authenticate challenge when the credential was refused. */
export const CHALLENGE_INVALID_TOKEN = 'Bearer realm="verdict", error="invalid_token"';
/** www-authenticate challenge when the credential is malformed. */
export const CHALLENGE_INVALID_REQUEST = 'Bearer realm="verdict", error="invalid_request"';

/** A denial decided by the adapter itself, before or instead of the decider. */
export interface Rejection {
  readonly reason: Exclude<ReasonCode, "ALLOWED">;
  readonly message: string;
  /** www-authenticate challenge; 401s always carry one. */
  readonly challenge?: string;
  /** What is wrong with Envoy's route configuration, when that caused the denial (for the log only). */
  readonly configProblem?: string;
}

/** The HTTP status and google.rpc.Code of a denial with `reason`. */
export function denialStatus(reason: Exclude<ReasonCode, "ALLOWED">, rules: CompiledRules): { http: number; grpc: Code } {
  switch (reason) {
    case "UNAUTHENTICATED":
    case "MALFORMED_CREDENTIAL":
    case "UNKNOWN_CREDENTIAL":
    case "EXPIRED":
    case "REVOKED":
    case "DISABLED":
    case "TOKEN_BAD_SIGNATURE":
    case "TOKEN_ALGORITHM_NOT_ALLOWED":
    case "TOKEN_WRONG_AUDIENCE":
    case "TOKEN_WRONG_ISSUER":
    case "TOKEN_NOT_YET_VALID":
    case "TOKEN_UNKNOWN_KEY":
      return { http: 401, grpc: Code.Unauthenticated };
    case "FORBIDDEN":
    case "WRONG_TENANT":
    case "UNKNOWN_TENANT":
      return { http: 403, grpc: Code.PermissionDenied };
    case "RATE_LIMITED":
      return { http: 429, grpc: Code.ResourceExhausted };
    case "INVALID_REQUEST":
      return { http: 400, grpc: Code.InvalidArgument };
    case "INTERNAL_ERROR":
    case "STALE":
      return rules.failureStatus === 503
        ? { http: 503, grpc: Code.Unavailable }
        : { http: 403, grpc: Code.PermissionDenied };
  }
}

// Responses are built as the plain objects protobuf-es messages are (every field present, typed by
// gen/), not with create(): its reflective initialisation costs several microseconds per answer on
// the hot path. The types make a field added to the proto a compile error here.
const NO_BYTES = new Uint8Array(0);

function header(key: string, value: string): HeaderValueOption {
  return {
    $typeName: "envoy.config.core.v3.HeaderValueOption",
    header: { $typeName: "envoy.config.core.v3.HeaderValue", key, value, rawValue: NO_BYTES },
    appendAction: OVERWRITE,
    keepEmptyValue: true,
  };
}

function checkResponse(code: number, message: string, httpResponse: CheckResponse["httpResponse"]): CheckResponse {
  return { $typeName: "envoy.service.auth.v3.CheckResponse", status: { $typeName: "google.rpc.Status", code, message, details: [] }, httpResponse };
}

/** Whole seconds until `rate` resets, at least 1 for a denial (a client told 0 would retry at once). */
function resetSeconds(rate: RateAnswer): number {
  const seconds = Math.ceil(rate.resetMs / 1000);
  return rate.allowed ? seconds : Math.max(1, seconds);
}

/** X-RateLimit-Limit, -Remaining and -Reset (seconds until the reported bound resets) for `rate`'s reported bound. */
function rateLimitHeaders(rate: RateAnswer): HeaderValueOption[] {
  return [
    header("x-ratelimit-limit", String(rate.bound!.limit)),
    header("x-ratelimit-remaining", String(rate.remaining)),
    header("x-ratelimit-reset", String(resetSeconds(rate))),
  ];
}

function okResponse(headers: HeaderValueOption[], headersToRemove: string[], rate: RateAnswer | undefined, rules: CompiledRules): CheckResponse {
  const value: OkHttpResponse = {
    $typeName: "envoy.service.auth.v3.OkHttpResponse",
    headers,
    headersToRemove,
    // To the client, with the upstream's answer; only when the rules ask for them.
    responseHeadersToAdd: rules.rateLimits.includeHeaders && rate?.bound !== undefined ? rateLimitHeaders(rate) : [],
    queryParametersToSet: [],
    queryParametersToRemove: [],
  };
  return checkResponse(Code.Ok, "", { case: "okResponse", value });
}

/**
 * A denial: the HTTP status, a JSON body with the reason, message and decision id, and for a rate
 * limit (`rate` with a bound) Retry-After, the X-RateLimit-* headers and the limit in the body.
 */
export function deniedResponse(rules: CompiledRules, decisionId: string, status: { http: number; grpc: Code }, rejection: Rejection, rate?: RateAnswer): CheckResponse {
  const headers = [
    header("content-type", "application/json"),
    header("cache-control", "no-store"),
    header(rules.headers.decisionId, decisionId),
  ];
  const limited = rejection.reason === "RATE_LIMITED" && rate?.bound !== undefined ? rate : undefined;
  if (limited !== undefined) headers.push(header("retry-after", String(resetSeconds(limited))), ...rateLimitHeaders(limited));
  // RFC 6750 section 3: every 401 carries a challenge; a 400 about the credential itself carries invalid_request.
  if (status.http === 401) headers.push(header("www-authenticate", rejection.challenge ?? CHALLENGE_INVALID_TOKEN));
  else if (status.http === 400 && rejection.challenge !== undefined) headers.push(header("www-authenticate", rejection.challenge));
  const value: DeniedHttpResponse = {
    $typeName: "envoy.service.auth.v3.DeniedHttpResponse",
    status: { $typeName: "envoy.type.v3.HttpStatus", code: status.http as StatusCode },
    headers,
    body: JSON.stringify(
      limited === undefined
        ? { reason: rejection.reason, message: rejection.message, decision_id: decisionId }
        : {
            reason: rejection.reason,
            message: rejection.message,
            decision_id: decisionId,
            limit: limited.bound!.limit,
            remaining: limited.remaining,
            window: limited.bound!.window,
            scope: limited.bound!.scope,
            retry_after: resetSeconds(limited),
          },
    ),
  };
  return checkResponse(status.grpc, rejection.reason, { case: "deniedResponse", value });
}

/**
 * Allows the request: the principal, tenant, roles and decision id go upstream, credentials do not;
 * the X-RateLimit-* headers of `rate` go to the client when the rules include them.
 */
export function allowedResponse(rules: CompiledRules, decisionId: string, principal: PrincipalView, tenant: string, strip: UpstreamStrip, rate?: RateAnswer): CheckResponse {
  const names = rules.headers;
  const headers = [
    header(names.principal, principal.kind === "api_key" ? `key:${principal.keyId}` : principal.userId),
    header(names.tenant, principal.tenant || tenant),
    header(names.roles, principal.roles.join(",")),
    header(names.decisionId, decisionId),
  ];
  if (strip.cookie !== undefined) headers.push(header("cookie", strip.cookie));
  return okResponse(headers, [...strip.remove], rate, rules);
}

/**
 * Allows an exempt path; removes any client-sent principal headers so upstream cannot be fooled,
 * and the credentials `strip` names.
 */
export function exemptResponse(rules: CompiledRules, decisionId: string, strip: UpstreamStrip, rate?: RateAnswer): CheckResponse {
  const names = rules.headers;
  const headers = [header(names.decisionId, decisionId)];
  if (strip.cookie !== undefined) headers.push(header("cookie", strip.cookie));
  return okResponse(headers, [names.principal, names.tenant, names.roles, ...strip.remove], rate, rules);
}
