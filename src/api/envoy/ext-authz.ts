/**
 * Envoy ext_authz adapter: turns an `envoy.service.auth.v3.CheckRequest` into a Verdict check
 * (credential, action, tenant) and the decision back into a `CheckResponse`. Every request gets an
 * answer with a decision id; denials and failures are responses, never exceptions, and any failure
 * inside the adapter or the decider fails closed with the configured failure status.
 */
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { HeaderValueOption_HeaderAppendAction, type HeaderValueOption } from "../../../gen/envoy/config/core/v3/base_pb.js";
import type { CheckResponse, DeniedHttpResponse, OkHttpResponse } from "../../../gen/envoy/service/auth/v3/external_auth_pb.js";
import type { StatusCode } from "../../../gen/envoy/type/v3/http_status_pb.js";
import { isCompactJws } from "../../authn/tokens/compact-jws.js";
import type { Decision, PrincipalView, ReasonCode } from "../../core/decision.js";
import { isValidTenantId } from "../../core/names.js";
import { isValidAction } from "../../core/patterns.js";
import type { Decider } from "./decider.js";
import type { CompiledRules, CredentialSource, RulesSource } from "./rules.js";

/** Options of createExtAuthzHandler. */
export interface ExtAuthzOptions {
  readonly decider: Decider;
  /** Fixed rules, or a source such as a RulesHolder whose current rules are read per request. */
  readonly rules: CompiledRules | RulesSource;
  /** How long to wait for an asynchronous decision before failing closed; default 150 ms (Envoy waits 200 ms). */
  readonly timeoutMs?: number;
  /** Makes decision ids; default crypto.randomUUID. */
  readonly newDecisionId?: () => string;
  /** Told about every answer (for metrics and the audit trail); its errors never change the answer. */
  readonly onOutcome?: (outcome: ExtAuthzOutcome) => void;
}

/** What was decided for one ext_authz request. */
export interface ExtAuthzOutcome {
  readonly decisionId: string;
  readonly allowed: boolean;
  readonly reason: ReasonCode;
  /** 200 on allow; the HTTP status of the denial otherwise. */
  readonly httpStatus: number;
  /** google.rpc.Code of CheckResponse.status. */
  readonly grpcCode: number;
  /** Empty when the request was rejected before an action was known. */
  readonly action: string;
  /** Empty when the request was rejected before a tenant was known. */
  readonly tenant: string;
  readonly principal: PrincipalView | undefined;
  /** The exception that made the answer a failure, if any (for the log only). */
  readonly error: unknown;
  /** Time from receiving the request to building the answer, in milliseconds. */
  readonly durationMs: number;
}

/**
 * The parts of an HTTP request's attributes the adapter reads. A protobuf-es
 * `AttributeContext_HttpRequest` is one; so is what decodeCheckRequest (wire.ts) produces.
 */
export interface HttpRequestView {
  readonly method: string;
  readonly path: string;
  readonly host: string;
  /** Lower-case names; repeated headers joined with ",". */
  readonly headers: Readonly<Record<string, string>>;
  readonly headerMap?: { readonly headers: readonly { readonly key: string; readonly value: string; readonly rawValue: Uint8Array }[] };
  /**
   * Set by a decoder that kept only the headers the rules read (see headerNamesRead): the count and
   * longest value of ALL the request's headers, for the request limits.
   */
  readonly headerStats?: HeaderStats;
}

/** Size of a request's header map, measured while decoding it. */
export interface HeaderStats {
  readonly count: number;
  /** In UTF-8 bytes. */
  readonly longestValueBytes: number;
}

/** The parts of a CheckRequest the adapter reads; a protobuf-es `CheckRequest` is one. */
export interface CheckRequestView {
  readonly attributes?: {
    readonly request?: { readonly http?: HttpRequestView };
    readonly contextExtensions: Readonly<Record<string, string>>;
  };
}

/**
 * Answers one ext_authz Check; never rejects. `rules` are the rules the request was decoded for
 * (see headerNamesRead); by default the current rules.
 */
export type ExtAuthzHandler = (request: CheckRequestView, rules?: CompiledRules) => Promise<CheckResponse>;

/** google.rpc.Code values used in CheckResponse.status. */
const GrpcCode = Object.freeze({
  OK: 0,
  INVALID_ARGUMENT: 3,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
});

const DEFAULT_TIMEOUT_MS = 150;
const OVERWRITE = HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD;
const CHALLENGE_MISSING = 'Bearer realm="verdict"';
const CHALLENGE_INVALID_TOKEN = 'Bearer realm="verdict", error="invalid_token"';
const CHALLENGE_INVALID_REQUEST = 'Bearer realm="verdict", error="invalid_request"';

/** A credential found in the request, and how to keep it from reaching upstream. */
interface FoundCredential {
  readonly value: string;
  readonly source: CredentialSource;
  /** The header that carried it. */
  readonly header: string;
  /** For cookies: the cookie header without the session cookie ("" when nothing else remains). */
  readonly remainingCookies: string;
}

/** A denial decided by the adapter itself, before or instead of the decider. */
interface Rejection {
  readonly reason: Exclude<ReasonCode, "ALLOWED">;
  readonly message: string;
  /** www-authenticate challenge; 401s always carry one. */
  readonly challenge?: string;
}

type Headers = Readonly<Record<string, string>>;

/** The decider's promise did not settle within timeoutMs. */
class DecisionTimeout extends Error {
  constructor(ms: number) {
    super(`no decision within ${ms} ms`);
    this.name = "DecisionTimeout";
  }
}

/** Builds the ext_authz Check handler. Throws only for invalid options. */
export function createExtAuthzHandler(options: ExtAuthzOptions): ExtAuthzHandler {
  const { decider, onOutcome } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new RangeError(`timeoutMs must be positive, got ${timeoutMs}`);
  const newDecisionId = options.newDecisionId ?? randomUUID;
  const source = options.rules;
  const currentRules: () => CompiledRules = isRulesSource(source) ? () => source.current() : () => source;

  // Synchronous until the decider answers with a promise: a sync decision costs no microtask hops.
  return (request, decodedFor) => {
    const started = performance.now();
    const decisionId = newDecisionId();
    const rules = decodedFor ?? currentRules();
    const seen: Seen = { action: "", tenant: "" };
    const finish = (judgement: Judgement, error: unknown): CheckResponse => {
      let response: CheckResponse;
      let httpStatus = 200;
      let grpcCode: number = GrpcCode.OK;
      if (judgement.kind === "reject") {
        const status = denialStatus(judgement.rejection.reason, rules);
        response = deniedResponse(rules, decisionId, status, judgement.rejection);
        httpStatus = status.http;
        grpcCode = status.grpc;
      } else {
        response =
          judgement.kind === "exempt"
            ? exemptResponse(rules, decisionId)
            : allowedResponse(rules, decisionId, judgement.principal, seen.tenant, judgement.credential);
      }
      if (onOutcome !== undefined) {
        try {
          onOutcome({
            decisionId,
            allowed: judgement.kind !== "reject",
            reason: judgement.kind === "reject" ? judgement.rejection.reason : "ALLOWED",
            httpStatus,
            grpcCode,
            action: seen.action,
            tenant: seen.tenant,
            principal: judgement.kind === "exempt" ? undefined : judgement.principal,
            error,
            durationMs: performance.now() - started,
          });
        } catch {
          // An observer's failure must not change or lose the answer Envoy is waiting for.
        }
      }
      return response;
    };
    const fail = (caught: unknown): CheckResponse => finish(failure(caught), caught);
    let judged: Judgement | Promise<Judgement>;
    try {
      judged = judge(request, rules, decider, timeoutMs, seen);
    } catch (caught) {
      return Promise.resolve(fail(caught));
    }
    return judged instanceof Promise ? judged.then((j) => finish(j, undefined), fail) : Promise.resolve(finish(judged, undefined));
  };
}

/** The answer when the decider (or the adapter) failed: fail closed. */
function failure(caught: unknown): Judgement {
  const message = caught instanceof DecisionTimeout ? "the decision timed out" : "the authorization service failed";
  return rejected("INTERNAL_ERROR", message);
}

/** The action and tenant once known, reported in the outcome even when the request is denied. */
interface Seen {
  action: string;
  tenant: string;
}

type Judgement =
  | { readonly kind: "exempt" }
  | { readonly kind: "allow"; readonly principal: PrincipalView; readonly credential: FoundCredential }
  | { readonly kind: "reject"; readonly rejection: Rejection; readonly principal: PrincipalView | undefined };

function rejected(reason: Rejection["reason"], message: string, challenge?: string): Judgement {
  return { kind: "reject", rejection: { reason, message, challenge }, principal: undefined };
}

/** Decides one request; throws (or rejects) only when the decider fails or times out. */
function judge(request: CheckRequestView, rules: CompiledRules, decider: Decider, timeoutMs: number, seen: Seen): Judgement | Promise<Judgement> {
  const attributes = request.attributes;
  const http = attributes?.request?.http;
  if (attributes === undefined || http === undefined) return rejected("INVALID_REQUEST", "the request has no HTTP attributes");
  const headers = headersOf(http);
  const path = http.path || headers[":path"] || "";
  const problem = requestProblem(http, headers, path, rules);
  if (problem !== undefined) return rejected("INVALID_REQUEST", problem);
  if (rules.isExempt(path)) return { kind: "exempt" };

  const credential = findCredential(headers, rules);
  if (credential === undefined) return rejected("UNAUTHENTICATED", "no credential in the request", CHALLENGE_MISSING);
  if (credential.value.length === 0) return rejected("INVALID_REQUEST", "the credential is empty", CHALLENGE_INVALID_REQUEST);

  const extensions = attributes.contextExtensions;
  const override = extensions[rules.actionOverrideKey];
  if (override !== undefined && !isValidAction(override)) {
    return rejected("INTERNAL_ERROR", `the route's ${rules.actionOverrideKey} is not a valid action`);
  }
  const action = override ?? rules.actionFor(http.method || headers[":method"] || "", path);
  if (action === undefined) return rejected("FORBIDDEN", "no route rule matches this request");
  seen.action = action;

  const tenant = findTenant(headers, http, extensions, credential.value, rules);
  if (tenant === "") return rejected("INVALID_REQUEST", "no tenant in the request");
  if (!isValidTenantId(tenant)) return rejected("INVALID_REQUEST", "the tenant id is malformed");
  seen.tenant = tenant;

  const decision = decide(decider, credential.value, action, tenant, timeoutMs);
  return decision instanceof Promise ? decision.then((d) => fromDecision(d, credential)) : fromDecision(decision, credential);
}

function fromDecision(decision: Decision, credential: FoundCredential): Judgement {
  if (!decision.allowed) return { kind: "reject", rejection: decisionRejection(decision), principal: decision.principal };
  if (decision.principal === undefined) return rejected("INTERNAL_ERROR", "the decision allowed the request without a principal");
  return { kind: "allow", principal: decision.principal, credential };
}

function isRulesSource(value: CompiledRules | RulesSource): value is RulesSource {
  return typeof (value as RulesSource).current === "function";
}

/** The request headers as a lower-case-keyed record, from `headers` or, when that is empty, `header_map`. */
function headersOf(http: HttpRequestView): Headers {
  if (http.headerStats !== undefined && http.headerStats.count > 0) return http.headers;
  for (const _ in http.headers) return http.headers;
  const list = http.headerMap?.headers;
  if (list === undefined || list.length === 0) return http.headers;
  const decoder = new TextDecoder();
  const record: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const header of list) {
    const key = header.key.toLowerCase();
    const value = header.value !== "" || header.rawValue.length === 0 ? header.value : decoder.decode(header.rawValue);
    const earlier = record[key];
    record[key] = earlier === undefined ? value : `${earlier},${value}`;
  }
  return record;
}

/** Why the request cannot be judged (too large, malformed path), or undefined. */
function requestProblem(http: HttpRequestView, headers: Headers, path: string, rules: CompiledRules): string | undefined {
  const { maxHeaders, maxHeaderValueLength, maxPathLength } = rules.limits;
  const stats = http.headerStats;
  if (stats !== undefined) {
    if (stats.count > maxHeaders) return `more than ${maxHeaders} headers`;
    if (stats.longestValueBytes > maxHeaderValueLength) return `a header value is longer than ${maxHeaderValueLength} bytes`;
  } else {
    let count = 0;
    for (const name in headers) {
      if (++count > maxHeaders) return `more than ${maxHeaders} headers`;
      if (Buffer.byteLength(headers[name]) > maxHeaderValueLength) return `a header value is longer than ${maxHeaderValueLength} bytes`;
    }
  }
  if (path.length === 0) return "the request has no path";
  if (path.length > maxPathLength) return `the path is longer than ${maxPathLength} characters`;
  if (path.charCodeAt(0) !== 47 /* / */) return "the path must start with '/'";
  if (hasDotSegment(path)) return "the path has a '.' or '..' segment (enable path normalization in Envoy)";
  return undefined;
}

/** True when a segment of the path (before any query) is ".", "..", or one of them percent-encoded. */
function hasDotSegment(path: string): boolean {
  let start = 1;
  for (let i = 1; i <= path.length; i++) {
    const c = i < path.length ? path.charCodeAt(i) : 47;
    if (c === 63 /* ? */ || c === 35 /* # */ || c === 47 /* / */) {
      const length = i - start;
      if (length > 0 && length <= 6) {
        const first = path.charCodeAt(start);
        if ((first === 46 /* . */ || first === 37) /* % */ && isDots(path.slice(start, i))) return true;
      }
      if (c !== 47) return false;
      start = i + 1;
    }
  }
  return false;
}

function isDots(segment: string): boolean {
  const decoded = segment.replace(/%2e/gi, ".");
  return decoded === "." || decoded === "..";
}

/**
 * Every request header the adapter may read under `rules` (pseudo-headers, credential and tenant
 * headers). A decoder may drop the values of all others, as long as it reports headerStats.
 */
export function headerNamesRead(rules: CompiledRules): string[] {
  const names = new Set([":path", ":method", ":authority", "host", "authorization", rules.apiKeyHeader]);
  if (rules.cookieName !== undefined) names.add("cookie");
  for (const source of rules.tenantSources) if (source.kind === "header") names.add(source.name);
  return [...names];
}

/** The first credential found in the configured source order. */
function findCredential(headers: Headers, rules: CompiledRules): FoundCredential | undefined {
  for (const source of rules.credentialSources) {
    if (source === "bearer") {
      const value = headers.authorization;
      if (value !== undefined && value.length > 7 && value.slice(0, 7).toLowerCase() === "bearer ") {
        return { value: value.slice(7).trim(), source, header: "authorization", remainingCookies: "" };
      }
    } else if (source === "api-key") {
      const value = headers[rules.apiKeyHeader];
      if (value !== undefined) return { value: value.trim(), source, header: rules.apiKeyHeader, remainingCookies: "" };
    } else {
      const found = findCookie(headers.cookie, rules.cookieName!);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/** Finds cookie `name` in a cookie header (pairs separated by ';', or ',' where Envoy joined repeats). */
function findCookie(header: string | undefined, name: string): FoundCredential | undefined {
  if (header === undefined) return undefined;
  let value: string | undefined;
  const others: string[] = [];
  for (const pair of header.split(/[;,]/)) {
    const trimmed = pair.trim();
    if (trimmed === "") continue;
    const eq = trimmed.indexOf("=");
    if (value === undefined && eq === name.length && trimmed.startsWith(name)) {
      value = trimmed.slice(eq + 1).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    } else {
      others.push(trimmed);
    }
  }
  return value === undefined ? undefined : { value, source: "cookie", header: "cookie", remainingCookies: others.join("; ") };
}

/** The tenant: the route override, else the first source that yields one, else the default, else "". */
function findTenant(
  headers: Headers,
  http: HttpRequestView,
  extensions: Readonly<Record<string, string>>,
  credential: string,
  rules: CompiledRules,
): string {
  const override = extensions[rules.tenantOverrideKey];
  if (override !== undefined && override !== "") return override;
  for (const source of rules.tenantSources) {
    let tenant: string | undefined;
    switch (source.kind) {
      case "header":
        tenant = headers[source.name]?.trim();
        break;
      case "context-extension":
        tenant = extensions[source.key];
        break;
      case "jwt-claim":
        tenant = unverifiedClaim(credential, source.claim);
        break;
      case "host":
        tenant = tenantFromHost(http.host || headers[":authority"] || headers.host || "", source.prefix, source.suffix);
        break;
    }
    if (tenant !== undefined && tenant !== "") return tenant;
  }
  return rules.defaultTenant ?? "";
}

/**
 * Reads a string claim from a JWT's payload WITHOUT verifying it. Used only to choose the tenant to
 * check in: the decider verifies the token and its membership in that tenant.
 */
function unverifiedClaim(credential: string, claim: string): string | undefined {
  if (!isCompactJws(credential)) return undefined;
  const first = credential.indexOf(".");
  const second = credential.lastIndexOf(".");
  try {
    const payload: unknown = JSON.parse(Buffer.from(credential.slice(first + 1, second), "base64url").toString("utf8"));
    if (payload === null || typeof payload !== "object") return undefined;
    const value = (payload as Record<string, unknown>)[claim];
    return typeof value === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}

/** The `{tenant}` part of `host` (port dropped, lower-cased) for the pattern prefix{tenant}suffix. */
function tenantFromHost(host: string, prefix: string, suffix: string): string | undefined {
  let end = host.length;
  const colon = host.lastIndexOf(":");
  if (colon >= 0 && host.indexOf("]") < colon) end = colon;
  const lower = host.slice(0, end).toLowerCase();
  if (lower.length <= prefix.length + suffix.length || !lower.startsWith(prefix) || !lower.endsWith(suffix)) return undefined;
  const tenant = lower.slice(prefix.length, lower.length - suffix.length);
  return tenant.includes(".") ? undefined : tenant;
}

/** The decider's answer; a promise is given timeoutMs to settle. */
function decide(decider: Decider, credential: string, action: string, tenant: string, timeoutMs: number): Decision | Promise<Decision> {
  const result = decider.check(credential, action, tenant);
  if (!(result instanceof Promise)) return result;
  return new Promise<Decision>((resolve, reject) => {
    const timer = setTimeout(() => reject(new DecisionTimeout(timeoutMs)), timeoutMs);
    result.then(
      (decision) => {
        clearTimeout(timer);
        resolve(decision);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

function decisionRejection(decision: Decision): Rejection {
  const reason = decision.reason === "ALLOWED" ? "INTERNAL_ERROR" : decision.reason;
  const message = decision.reason === "ALLOWED" ? "the decision denied the request with reason ALLOWED" : decision.message;
  return { reason, message, challenge: CHALLENGE_INVALID_TOKEN };
}

/** The HTTP status and google.rpc.Code of a denial with `reason`. */
function denialStatus(reason: Exclude<ReasonCode, "ALLOWED">, rules: CompiledRules): { http: number; grpc: number } {
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
      return { http: 401, grpc: GrpcCode.UNAUTHENTICATED };
    case "FORBIDDEN":
    case "WRONG_TENANT":
    case "UNKNOWN_TENANT":
      return { http: 403, grpc: GrpcCode.PERMISSION_DENIED };
    case "RATE_LIMITED":
      return { http: 429, grpc: GrpcCode.RESOURCE_EXHAUSTED };
    case "INVALID_REQUEST":
      return { http: 400, grpc: GrpcCode.INVALID_ARGUMENT };
    case "INTERNAL_ERROR":
    case "STALE":
      return rules.failureStatus === 503
        ? { http: 503, grpc: GrpcCode.UNAVAILABLE }
        : { http: 403, grpc: GrpcCode.PERMISSION_DENIED };
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

function okResponse(headers: HeaderValueOption[], headersToRemove: string[]): CheckResponse {
  const value: OkHttpResponse = {
    $typeName: "envoy.service.auth.v3.OkHttpResponse",
    headers,
    headersToRemove,
    responseHeadersToAdd: [],
    queryParametersToSet: [],
    queryParametersToRemove: [],
  };
  return checkResponse(GrpcCode.OK, "", { case: "okResponse", value });
}

function deniedResponse(rules: CompiledRules, decisionId: string, status: { http: number; grpc: number }, rejection: Rejection): CheckResponse {
  const headers = [
    header("content-type", "application/json"),
    header("cache-control", "no-store"),
    header(rules.headers.decisionId, decisionId),
  ];
  // RFC 6750 section 3: every 401 carries a challenge; a 400 about the credential itself carries invalid_request.
  if (status.http === 401) headers.push(header("www-authenticate", rejection.challenge ?? CHALLENGE_INVALID_TOKEN));
  else if (status.http === 400 && rejection.challenge !== undefined) headers.push(header("www-authenticate", rejection.challenge));
  const value: DeniedHttpResponse = {
    $typeName: "envoy.service.auth.v3.DeniedHttpResponse",
    status: { $typeName: "envoy.type.v3.HttpStatus", code: status.http as StatusCode },
    headers,
    body: JSON.stringify({ reason: rejection.reason, message: rejection.message, decision_id: decisionId }),
  };
  return checkResponse(status.grpc, rejection.reason, { case: "deniedResponse", value });
}

function allowedResponse(rules: CompiledRules, decisionId: string, principal: PrincipalView, tenant: string, credential: FoundCredential): CheckResponse {
  const names = rules.headers;
  const headers = [
    header(names.principal, principal.kind === "api_key" ? `key:${principal.keyId}` : principal.userId),
    header(names.tenant, principal.tenant || tenant),
    header(names.roles, principal.roles.join(",")),
    header(names.decisionId, decisionId),
  ];
  const headersToRemove: string[] = [];
  if (rules.stripCredential) {
    if (credential.source === "cookie" && credential.remainingCookies !== "") {
      headers.push(header("cookie", credential.remainingCookies));
    } else {
      headersToRemove.push(credential.header);
    }
  }
  return okResponse(headers, headersToRemove);
}

/** Allows an exempt path; removes any client-sent principal headers so upstream cannot be fooled. */
function exemptResponse(rules: CompiledRules, decisionId: string): CheckResponse {
  const names = rules.headers;
  return okResponse([header(names.decisionId, decisionId)], [names.principal, names.tenant, names.roles]);
}
