/**
 * Envoy ext_authz adapter: turns an `envoy.service.auth.v3.CheckRequest` into a Verdict check
 * (credential, action, tenant) and the decision back into a `CheckResponse`. Every request gets an
 * answer with a decision id; denials and failures are responses, never exceptions, and any failure
 * inside the adapter or the decider fails closed with the configured failure status.
 */
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { CheckResponse } from "../../../gen/envoy/service/auth/v3/external_auth_pb.js";
import type { Decision, PrincipalView, ReasonCode } from "../../core/decision.js";
import { DEFAULT_IPV6_LIMIT_PREFIX, addressBucket } from "../../core/address-bucket.js";
import type { RateAnswer } from "../../core/rate-limit.js";
import { isValidTenantId } from "../../core/names.js";
import { isValidAction } from "../../core/patterns.js";
import { Code } from "../code.js";
import { findCredential, sessionCookies, upstreamStrip, type UpstreamStrip } from "./credentials.js";
import type { Decider } from "./decider.js";
import { clientAddress, headersOf, METHOD_OVERRIDE_HEADERS, methodOverride, requestProblem, type CheckRequestView } from "./request.js";
import { examinePath, type AmbiguousPathPolicy } from "./request-path.js";
import {
  allowedResponse,
  CHALLENGE_INVALID_REQUEST,
  CHALLENGE_INVALID_TOKEN,
  CHALLENGE_MISSING,
  deniedResponse,
  denialStatus,
  exemptResponse,
  type Rejection,
} from "./responses.js";
import type { CompiledRules, RulesSource } from "./rules/model.js";
import type { RouteRateLimit } from "./rules/route-limits.js";
import { findTenant, tenantExtensionKey } from "./tenant.js";

/** Options of createExtAuthzHandler. */
export interface ExtAuthzOptions {
  readonly decider: Decider;
  /** Fixed rules, or a source such as a RulesHolder whose current rules are read per request. */
  readonly rules: CompiledRules | RulesSource;
  /**
   * What to do with a path an upstream may split or resolve differently than it is written
   * (encoded '/', '\\', `;` parameters, '//', dot segments): `deny` (default) answers 400,
   * `normalize` matches the rules against the normalised path. See request-path.ts.
   */
  readonly ambiguousPaths?: AmbiguousPathPolicy;
  /**
   * Anonymous requests to a rate-limited exempt path are counted per client address, an IPv6 one
   * by this many leading bits (VERDICT_IPV6_LIMIT_PREFIX; default 64: one subscriber's /64).
   */
  readonly ipv6LimitPrefix?: number;
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
  /**
   * The rate-limit standing when a limit applied: the bound that denied (RATE_LIMITED), or the one
   * with the fewest units left; `shadow` is set when a shadow limit would have denied.
   */
  readonly rate: RateAnswer | undefined;
  /** The exception that made the answer a failure, if any (for the log only). */
  readonly error: unknown;
  /**
   * Set when the request was denied because of Envoy's route configuration rather than anything
   * the client sent (a malformed action or tenant in a context extension): what is wrong, for the
   * operator's log.
   */
  readonly configProblem: string | undefined;
  /** Time from receiving the request to building the answer, in milliseconds. */
  readonly durationMs: number;
}

/**
 * Answers one ext_authz Check; never rejects. `rules` are the rules the request was decoded for
 * (see headerNamesRead); by default the current rules.
 */
export type ExtAuthzHandler = (request: CheckRequestView, rules?: CompiledRules) => CheckResponse | Promise<CheckResponse>;

const DEFAULT_TIMEOUT_MS = 150;

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
  const pathPolicy = options.ambiguousPaths ?? "deny";
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new RangeError(`timeoutMs must be positive, got ${timeoutMs}`);
  const ipv6Prefix = options.ipv6LimitPrefix ?? DEFAULT_IPV6_LIMIT_PREFIX;
  addressBucket("::", ipv6Prefix); // a bad prefix throws now, not at the first IPv6 request
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
      let grpcCode: Code = Code.Ok;
      if (judgement.kind === "reject") {
        const status = denialStatus(judgement.rejection.reason, rules);
        response = deniedResponse(rules, decisionId, status, judgement.rejection, judgement.rate);
        httpStatus = status.http;
        grpcCode = status.grpc;
      } else {
        response =
          judgement.kind === "exempt"
            ? exemptResponse(rules, decisionId, judgement.strip, judgement.rate)
            : allowedResponse(rules, decisionId, judgement.principal, seen.tenant, judgement.strip, judgement.rate);
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
            rate: judgement.rate,
            error,
            configProblem: judgement.kind === "reject" ? judgement.rejection.configProblem : undefined,
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
      judged = judge(request, rules, decider, timeoutMs, pathPolicy, ipv6Prefix, seen);
    } catch (caught) {
      return fail(caught);
    }
    // A decision from memory is answered at once (no promise, no extra turn of the event loop).
    return judged instanceof Promise ? judged.then((j) => finish(j, undefined), fail) : finish(judged, undefined);
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
  | { readonly kind: "exempt"; readonly strip: UpstreamStrip; readonly rate?: RateAnswer }
  | { readonly kind: "allow"; readonly principal: PrincipalView; readonly strip: UpstreamStrip; readonly rate?: RateAnswer }
  | { readonly kind: "reject"; readonly rejection: Rejection; readonly principal: PrincipalView | undefined; readonly rate?: RateAnswer };

function rejected(reason: Rejection["reason"], message: string, challenge?: string): Judgement {
  return { kind: "reject", rejection: { reason, message, challenge }, principal: undefined };
}

/** A 400 caused by Envoy's route configuration; `problem` goes to the operator's log. */
function misconfigured(message: string, problem: string): Judgement {
  return { kind: "reject", rejection: { reason: "INVALID_REQUEST", message, configProblem: problem }, principal: undefined };
}

/** A configured value for a log line: JSON-quoted, at most 200 characters. */
function quoted(value: string): string {
  return JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}...` : value);
}

/**
 * An exempt path: counted per client address when its route has limits (decider.limitAnonymous),
 * an IPv6 client by its network of `ipv6Prefix` bits, as the login limits count it.
 */
function exempt(request: CheckRequestView, decider: Decider, route: RouteRateLimit | undefined, ipv6Prefix: number, strip: UpstreamStrip): Judgement {
  if (route === undefined || route.off || decider.limitAnonymous === undefined) return { kind: "exempt", strip };
  const rate = decider.limitAnonymous(addressBucket(clientAddress(request), ipv6Prefix), route, 1);
  if (rate.allowed) return { kind: "exempt", strip, rate: rate.bound === undefined && rate.shadow === undefined ? undefined : rate };
  const b = rate.bound!;
  const message = rate.unavailable
    ? "rate limits cannot be counted fleet-wide right now (Redis unreachable); failing closed"
    : `rate limit exceeded: ${b.limit} per ${b.window === "burst" ? "burst slot" : b.window} (route limit, per client address); retry in ${Math.ceil(rate.resetMs / 1000)} s`;
  return { kind: "reject", rejection: { reason: "RATE_LIMITED", message }, principal: undefined, rate };
}

/** Decides one request; throws (or rejects) only when the decider fails or times out. */
function judge(
  request: CheckRequestView,
  rules: CompiledRules,
  decider: Decider,
  timeoutMs: number,
  pathPolicy: AmbiguousPathPolicy,
  ipv6Prefix: number,
  seen: Seen,
): Judgement | Promise<Judgement> {
  const attributes = request.attributes;
  const http = attributes?.request?.http;
  if (attributes === undefined || http === undefined) return rejected("INVALID_REQUEST", "the request has no HTTP attributes");
  const headers = headersOf(http);
  const rawPath = http.path || headers[":path"] || "";
  const problem = requestProblem(http, headers, rawPath, rules);
  if (problem !== undefined) return rejected("INVALID_REQUEST", problem);
  const examined = examinePath(rawPath, pathPolicy);
  if (examined.problem !== undefined) return rejected("INVALID_REQUEST", examined.problem);
  const path = examined.path;
  if (methodOverride(headers) !== undefined) {
    return rejected("INVALID_REQUEST", `method override headers (${METHOD_OVERRIDE_HEADERS.join(", ")}) are refused`);
  }
  const method = http.method || headers[":method"] || "";
  const route = rules.rateLimits.forRequest(method, path);
  const cookies = sessionCookies(headers, rules);
  if (rules.isExempt(path)) return exempt(request, decider, route, ipv6Prefix, upstreamStrip(headers, rules, cookies, undefined));
  // Which of two session cookies would the upstream read? Verdict cannot know: refuse both.
  if (cookies !== undefined && cookies.values.length > 1) return rejected("INVALID_REQUEST", `the ${rules.cookieName} cookie is sent more than once`);

  const credential = findCredential(headers, rules, cookies);
  if (credential === undefined) return rejected("UNAUTHENTICATED", "no credential in the request", CHALLENGE_MISSING);
  if (credential.value.length === 0) return rejected("INVALID_REQUEST", "the credential is empty", CHALLENGE_INVALID_REQUEST);

  const extensions = attributes.contextExtensions;
  const override = extensions[rules.actionOverrideKey];
  // Envoy's route configuration, not the client, is wrong: a denial that says so, never a failure.
  if (override !== undefined && !isValidAction(override)) {
    const key = rules.actionOverrideKey;
    return misconfigured(
      `the route's ${key} context extension is not a valid action (Envoy's route configuration)`,
      `context extension ${key} ${quoted(override)} is not a valid action`,
    );
  }
  const action = override ?? rules.actionFor(method, path);
  if (action === undefined) return rejected("FORBIDDEN", "no route rule matches this request");
  seen.action = action;

  const tenant = findTenant(headers, http, extensions, credential.value, rules);
  if (tenant === "") return rejected("INVALID_REQUEST", "no tenant in the request");
  if (!isValidTenantId(tenant)) {
    const key = tenantExtensionKey(headers, http, extensions, credential.value, rules);
    return key === undefined
      ? rejected("INVALID_REQUEST", "the tenant id is malformed")
      : misconfigured("the tenant id is malformed", `context extension ${key} ${quoted(tenant)} is not a valid tenant id`);
  }
  seen.tenant = tenant;

  const strip = upstreamStrip(headers, rules, cookies, credential);
  const decision = decide(decider, credential.value, action, tenant, timeoutMs, route);
  return decision instanceof Promise ? decision.then((d) => fromDecision(d, strip)) : fromDecision(decision, strip);
}

function fromDecision(decision: Decision, strip: UpstreamStrip): Judgement {
  if (!decision.allowed) return { kind: "reject", rejection: decisionRejection(decision), principal: decision.principal, rate: decision.rate };
  if (decision.principal === undefined) return rejected("INTERNAL_ERROR", "the decision allowed the request without a principal");
  return { kind: "allow", principal: decision.principal, strip, rate: decision.rate };
}

function isRulesSource(value: CompiledRules | RulesSource): value is RulesSource {
  return typeof (value as RulesSource).current === "function";
}

/** The decider's answer, spending one unit (and one on `route` when it has limits); a promise is given timeoutMs to settle. */
function decide(decider: Decider, credential: string, action: string, tenant: string, timeoutMs: number, route: RouteRateLimit | undefined): Decision | Promise<Decision> {
  const result = route === undefined ? decider.check(credential, action, tenant) : decider.check(credential, action, tenant, 1, route);
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
