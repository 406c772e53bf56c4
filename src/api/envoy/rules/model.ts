/**
 * The vocabulary of the ext_authz route rules: what a validated rules file compiles to, its
 * defaults, and the error an unusable file raises. Parsing lives in parse.ts, watching the file in
 * watch.ts, swapping in the new rules in holder.ts.
 */

import type { RouteLimits } from "./route-limits.js";

/** Where a credential is read from, tried in the configured order. */
export type CredentialSource = "bearer" | "api-key" | "cookie";

/**
 * Which credentials are removed from an allowed request before it goes upstream: `all` (every
 * credential Verdict recognises: the authorization header, the API key header, every session
 * cookie), `used` (only the one the decision was made on), or `none`.
 */
export type StripPolicy = "all" | "used" | "none";

/** One place a tenant id is read from; the first source that yields a value wins. */
export type TenantSource =
  | { readonly kind: "header"; readonly name: string }
  | { readonly kind: "jwt-claim"; readonly claim: string }
  /** `prefix{tenant}suffix`, compared with the lower-cased host without its port. */
  | { readonly kind: "host"; readonly pattern: string; readonly prefix: string; readonly suffix: string }
  | { readonly kind: "context-extension"; readonly key: string };

/** Names of the headers the adapter adds upstream (and to denials, for the decision id). */
export interface VerdictHeaderNames {
  readonly principal: string;
  readonly tenant: string;
  readonly roles: string;
  readonly decisionId: string;
}

/** Request-size limits; a request over any of them is answered 400 INVALID_REQUEST. */
export interface RequestLimits {
  readonly maxHeaders: number;
  readonly maxHeaderValueLength: number;
  readonly maxPathLength: number;
}

/**
 * What a request that no rule matches is checked as: `deny` answers 403, `conventional` derives the
 * action from the method and the path (see conventionalAction).
 */
export type UnmatchedPolicy = "deny" | "conventional";

/** Validated, compiled rules. Immutable; replaced as a whole on reload. */
export interface CompiledRules {
  /**
   * The action of the first rule matching `method` and `path` (query ignored); with `unmatched:
   * conventional` the conventional action when no rule matches; otherwise undefined.
   */
  actionFor(method: string, path: string): string | undefined;
  readonly unmatched: UnmatchedPolicy;
  /**
   * False when the file says `caseSensitive: false`: rules, exempt paths and route limits then
   * match paths ignoring case (for upstreams that serve `/API/admin` as `/api/admin`).
   */
  readonly caseSensitive: boolean;
  /** True when `path` (query ignored) is allowed without a credential. */
  isExempt(path: string): boolean;
  readonly ruleCount: number;
  readonly tenantSources: readonly TenantSource[];
  /** Tenant used when no source yields one; undefined makes a missing tenant a 400. */
  readonly defaultTenant: string | undefined;
  readonly credentialSources: readonly CredentialSource[];
  readonly apiKeyHeader: string;
  /** Session cookie name; undefined when cookies are not a credential source. */
  readonly cookieName: string | undefined;
  /** Which credentials to remove from the request sent upstream. */
  readonly stripUpstream: StripPolicy;
  /** context_extensions key whose value replaces the matched action. */
  readonly actionOverrideKey: string;
  /** context_extensions key whose value replaces the tenant from every source. */
  readonly tenantOverrideKey: string;
  /** HTTP status for internal failures (decider error or timeout, INTERNAL_ERROR, STALE). */
  readonly failureStatus: 403 | 503;
  readonly headers: VerdictHeaderNames;
  readonly limits: RequestLimits;
  /** Routes' own rate limits (`rateLimits`), and whether allowed answers carry X-RateLimit-* headers. */
  readonly rateLimits: RouteLimits;
}

/** Anything that hands out the current rules (a holder, or fixed rules). */
export interface RulesSource {
  current(): CompiledRules;
}

/** A rules file that cannot be used; the message names the file and the offending entry. */
export class RulesError extends Error {
  constructor(
    readonly origin: string,
    readonly where: string,
    reason: string,
  ) {
    super(`${origin}: ${where}: ${reason}`);
    this.name = "RulesError";
  }
}

/** Every default of the rules file, in one place. */
export const RULES_DEFAULTS = Object.freeze({
  exempt: Object.freeze(["/healthz"]),
  tenantHeader: "x-tenant-id",
  apiKeyHeader: "x-api-key",
  stripUpstream: "all" as StripPolicy,
  actionOverrideKey: "verdict.action",
  tenantOverrideKey: "verdict.tenant",
  failureStatus: 503 as const,
  unmatched: "deny" as UnmatchedPolicy,
  caseSensitive: true,
  headers: Object.freeze({
    principal: "x-verdict-principal",
    tenant: "x-verdict-tenant",
    roles: "x-verdict-roles",
    decisionId: "x-verdict-decision-id",
  }),
  limits: Object.freeze({ maxHeaders: 200, maxHeaderValueLength: 16_384, maxPathLength: 4096 }),
});
