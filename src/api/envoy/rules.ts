/**
 * Route rules for the Envoy ext_authz adapter: which action an HTTP request performs, where its
 * credential and tenant come from, and how the answer is shaped. Parsed and validated once from a
 * YAML or JSON file, compiled into matchers that do not allocate per request, and held by a
 * reloading holder that keeps the last good rules when a new file is invalid.
 */
import { watch, type FSWatcher } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { parseDocument } from "yaml";
import { isValidTenantId } from "../../core/names.js";
import { isValidAction } from "../../core/patterns.js";

/** Where a credential is read from, tried in the configured order. */
export type CredentialSource = "bearer" | "api-key" | "cookie";

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
  /** Remove the credential that was used from the request sent upstream. */
  readonly stripCredential: boolean;
  /** context_extensions key whose value replaces the matched action. */
  readonly actionOverrideKey: string;
  /** context_extensions key whose value replaces the tenant from every source. */
  readonly tenantOverrideKey: string;
  /** HTTP status for internal failures (decider error or timeout, INTERNAL_ERROR, STALE). */
  readonly failureStatus: 403 | 503;
  readonly headers: VerdictHeaderNames;
  readonly limits: RequestLimits;
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
  stripCredential: true,
  actionOverrideKey: "verdict.action",
  tenantOverrideKey: "verdict.tenant",
  failureStatus: 503 as const,
  unmatched: "deny" as UnmatchedPolicy,
  headers: Object.freeze({
    principal: "x-verdict-principal",
    tenant: "x-verdict-tenant",
    roles: "x-verdict-roles",
    decisionId: "x-verdict-decision-id",
  }),
  limits: Object.freeze({ maxHeaders: 200, maxHeaderValueLength: 16_384, maxPathLength: 4096 }),
});

const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
const COOKIE_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
const METHOD = /^[A-Z]+$/;
const HOST_LITERAL = /^[a-z0-9.-]*$/;
const EXTENSION_KEY = /^[A-Za-z0-9_.:/-]+$/;
const CLAIM = /^[A-Za-z0-9_.:/-]+$/;
const PATH_SEGMENT = /^[A-Za-z0-9\-._~!$&'()+,;=:@%]*$/;

/** A path pattern as segments: a literal, "*" (one non-empty segment) or "**" (any rest, last only). */
type PathPattern = readonly string[];

interface CompiledRule {
  readonly segments: PathPattern;
  readonly action: string;
}

/** Parses, validates and compiles a rules file's text (YAML, or JSON, which is YAML). */
export function parseRules(text: string, origin = "rules"): CompiledRules {
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new RulesError(origin, "syntax", firstLine(doc.errors[0].message));
  }
  const fail = (where: string, reason: string): never => {
    throw new RulesError(origin, where, reason);
  };
  const root = mapping(doc.toJS() as unknown, "top level", fail);
  onlyKeys(root, ["rules", "unmatched", "exempt", "tenant", "credentials", "overrides", "failureStatus", "headers", "limits"], "top level", fail);

  const unmatched = root.unmatched ?? RULES_DEFAULTS.unmatched;
  if (unmatched !== "deny" && unmatched !== "conventional") {
    fail("unmatched", `must be deny or conventional, got ${describe(unmatched)}`);
  }
  const conventional = unmatched === "conventional";
  const rules = compileRouteRules(conventional ? (root.rules ?? []) : root.rules, conventional, fail);
  const exempt = compileExempt(root.exempt, fail);
  const tenant = compileTenant(root.tenant, fail);
  const credentials = compileCredentials(root.credentials, fail);
  const overrides = compileOverrides(root.overrides, fail);
  const failureStatus = root.failureStatus ?? RULES_DEFAULTS.failureStatus;
  if (failureStatus !== 403 && failureStatus !== 503) {
    fail("failureStatus", `must be 503 or 403, got ${JSON.stringify(failureStatus)}`);
  }
  const headers = compileHeaderNames(root.headers, fail);
  const limits = compileLimits(root.limits, fail);

  const byMethod = new Map<string, readonly CompiledRule[]>();
  for (const method of rules.methods) {
    byMethod.set(method, rules.list.filter((r) => r.methods === undefined || r.methods.includes(method)).map((r) => r.rule));
  }
  const anyMethod = rules.list.filter((r) => r.methods === undefined).map((r) => r.rule);

  return Object.freeze({
    actionFor(method: string, path: string): string | undefined {
      const candidates = byMethod.get(method) ?? anyMethod;
      const end = pathEnd(path);
      for (const rule of candidates) {
        if (matchPath(rule.segments, path, end)) return rule.action;
      }
      return conventional ? conventionalAction(method, path.slice(0, end)) : undefined;
    },
    unmatched: unmatched as UnmatchedPolicy,
    isExempt(path: string): boolean {
      const end = pathEnd(path);
      for (const segments of exempt) {
        if (matchPath(segments, path, end)) return true;
      }
      return false;
    },
    ruleCount: rules.list.length,
    tenantSources: tenant.sources,
    defaultTenant: tenant.defaultTenant,
    credentialSources: credentials.sources,
    apiKeyHeader: credentials.apiKeyHeader,
    cookieName: credentials.cookieName,
    stripCredential: credentials.stripCredential,
    actionOverrideKey: overrides.action,
    tenantOverrideKey: overrides.tenant,
    failureStatus: failureStatus as 403 | 503,
    headers,
    limits,
  });
}

/** The verb of each method under `unmatched: conventional`; other methods have no action. */
const CONVENTIONAL_VERBS: ReadonlyMap<string, string> = new Map([
  ["GET", "read"],
  ["HEAD", "read"],
  ["OPTIONS", "read"],
  ["POST", "create"],
  ["PUT", "update"],
  ["PATCH", "update"],
  ["DELETE", "delete"],
]);

/** Leading path segments that name an API or its version rather than a resource. */
const API_PREFIX_SEGMENT = /^(api|v\d+((alpha|beta)\d*)?)$/;

/**
 * The conventional action of a request: the method's verb (CONVENTIONAL_VERBS) and the first path
 * segment that is not `api` or a version such as `v1` or `v2beta1`, so `DELETE /v1/orders/42` is
 * `delete:orders`. Undefined for other methods, a path with no such segment, or a segment that is
 * not a valid resource name. `path` has no query.
 */
export function conventionalAction(method: string, path: string): string | undefined {
  const verb = CONVENTIONAL_VERBS.get(method);
  if (verb === undefined) return undefined;
  for (const segment of path.split("/")) {
    if (segment === "" || API_PREFIX_SEGMENT.test(segment)) continue;
    const action = `${verb}:${segment}`;
    return isValidAction(action) ? action : undefined;
  }
  return undefined;
}

/** The rules used when no rules file is configured: every default, and `unmatched: conventional`. */
export function builtInRules(): CompiledRules {
  return parseRules("unmatched: conventional\n", "built-in rules");
}

/** Index of the end of the path proper: the first '?' or '#', or the length. */
function pathEnd(path: string): number {
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 63 /* ? */ || c === 35 /* # */) return i;
  }
  return path.length;
}

/** Matches `path[0, end)` (which starts with '/') against compiled segments without allocating. */
function matchPath(segments: PathPattern, path: string, end: number): boolean {
  if (end === 0 || path.charCodeAt(0) !== 47 /* / */) return false;
  let pos = 1;
  for (const segment of segments) {
    if (segment === "**") return true;
    if (pos > end) return false;
    let next = path.indexOf("/", pos);
    if (next < 0 || next > end) next = end;
    if (segment === "*") {
      if (next === pos) return false;
    } else if (next - pos !== segment.length || !path.startsWith(segment, pos)) {
      return false;
    }
    pos = next + 1;
  }
  return pos > end;
}

type Fail = (where: string, reason: string) => never;

function firstLine(message: string): string {
  const newline = message.indexOf("\n");
  return newline < 0 ? message : message.slice(0, newline);
}

function mapping(value: unknown, where: string, fail: Fail): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    fail(where, `must be a mapping, got ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

function onlyKeys(value: Record<string, unknown>, allowed: readonly string[], where: string, fail: Fail): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) fail(where, `unknown key ${JSON.stringify(key)} (expected one of ${allowed.join(", ")})`);
  }
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return "nothing";
  if (Array.isArray(value)) return "a list";
  return typeof value === "object" ? "a mapping" : `${typeof value} ${JSON.stringify(value)}`;
}

function optionalString(value: unknown, where: string, fail: Fail): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value.length === 0) fail(where, `must be a non-empty string, got ${describe(value)}`);
  return value as string;
}

function headerName(value: unknown, fallback: string, where: string, fail: Fail): string {
  const name = optionalString(value, where, fail) ?? fallback;
  if (!HEADER_NAME.test(name)) {
    fail(where, `${JSON.stringify(name)} is not a lower-case HTTP header name (Envoy sends header names in lower case)`);
  }
  return name;
}

/** Compiles a path pattern; returns the reason it is malformed as a string instead when it is. */
function compilePathPattern(pattern: string): PathPattern | string {
  if (!pattern.startsWith("/")) return "a path pattern must start with '/'";
  if (pattern.includes("?") || pattern.includes("#")) return "a path pattern must not contain a query or fragment";
  const segments = pattern.slice(1).split("/");
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i];
    if (segment === "**") {
      if (i !== segments.length - 1) return "'**' may only be the last segment";
    } else if (segment === "*") {
      continue;
    } else if (segment.includes("*")) {
      return `segment ${JSON.stringify(segment)} mixes '*' with other characters; '*' must be a whole segment`;
    } else if (segment === "." || segment === "..") {
      return "'.' and '..' segments are not allowed";
    } else if (segment === "" && i !== segments.length - 1) {
      return "empty segment ('//')";
    } else if (!PATH_SEGMENT.test(segment)) {
      return `segment ${JSON.stringify(segment)} contains characters not allowed in a URL path`;
    }
  }
  return Object.freeze(segments);
}

interface ParsedRule {
  readonly methods: readonly string[] | undefined;
  readonly rule: CompiledRule;
}

function compileRouteRules(value: unknown, mayBeEmpty: boolean, fail: Fail): { list: readonly ParsedRule[]; methods: ReadonlySet<string> } {
  if (!Array.isArray(value) || (value.length === 0 && !mayBeEmpty)) {
    fail("rules", `must be a non-empty list (or set "unmatched: conventional"), got ${describe(value)}`);
  }
  const list: ParsedRule[] = [];
  const methods = new Set<string>();
  const seen = new Map<string, number>();
  (value as unknown[]).forEach((entry, index) => {
    const label = `rules[${index}]`;
    const rule = mapping(entry, label, fail);
    const named = typeof rule.match === "string" ? `${label} (${JSON.stringify(rule.match)})` : label;
    onlyKeys(rule, ["match", "action"], named, fail);
    if (typeof rule.match !== "string") fail(named, `"match" must be a string like "GET /v1/orders/*", got ${describe(rule.match)}`);
    if (typeof rule.action !== "string") fail(named, `"action" must be a string like "read:orders", got ${describe(rule.action)}`);
    const match = (rule.match as string).trim();
    const action = rule.action as string;
    const space = match.indexOf(" ");
    if (space < 0) fail(named, `"match" must be "<METHOD> <PATH>", for example "GET /v1/orders/*"`);
    const methodPart = match.slice(0, space);
    const pathPart = match.slice(space + 1).trim();
    let ruleMethods: string[] | undefined;
    if (methodPart !== "*") {
      ruleMethods = methodPart.split(",");
      for (const method of ruleMethods) {
        if (!METHOD.test(method)) fail(named, `method ${JSON.stringify(method)} must be upper-case letters, a comma-separated list of them, or '*'`);
      }
    }
    const segments = compilePathPattern(pathPart);
    if (typeof segments === "string") fail(named, segments);
    if (!isValidAction(action)) fail(named, `action ${JSON.stringify(action)} is not "verb:resource" (for example "read:orders")`);
    for (const method of ruleMethods ?? ["*"]) {
      const key = `${method} ${pathPart}`;
      const earlier = seen.get(key);
      if (earlier !== undefined) fail(named, `duplicates rules[${earlier}] for ${key}`);
      seen.set(key, index);
      if (method !== "*") methods.add(method);
    }
    list.push({ methods: ruleMethods, rule: { segments: segments as PathPattern, action } });
  });
  return { list, methods };
}

function compileExempt(value: unknown, fail: Fail): readonly PathPattern[] {
  if (value === undefined) return RULES_DEFAULTS.exempt.map((p) => compilePathPattern(p) as PathPattern);
  if (!Array.isArray(value)) fail("exempt", `must be a list of path patterns, got ${describe(value)}`);
  return (value as unknown[]).map((pattern, index) => {
    const where = `exempt[${index}]`;
    if (typeof pattern !== "string") fail(where, `must be a path pattern, got ${describe(pattern)}`);
    const segments = compilePathPattern(pattern as string);
    if (typeof segments === "string") fail(`${where} (${JSON.stringify(pattern)})`, segments);
    return segments as PathPattern;
  });
}

const DEFAULT_TENANT_SOURCES: readonly TenantSource[] = Object.freeze([{ kind: "header", name: RULES_DEFAULTS.tenantHeader }]);

function compileTenant(value: unknown, fail: Fail): { sources: readonly TenantSource[]; defaultTenant: string | undefined } {
  if (value === undefined) return { sources: DEFAULT_TENANT_SOURCES, defaultTenant: undefined };
  const tenant = mapping(value, "tenant", fail);
  onlyKeys(tenant, ["from", "default"], "tenant", fail);
  const defaultTenant = optionalString(tenant.default, "tenant.default", fail);
  if (defaultTenant !== undefined && !isValidTenantId(defaultTenant)) {
    fail("tenant.default", `${JSON.stringify(defaultTenant)} is not a valid tenant id`);
  }
  if (tenant.from === undefined) return { sources: DEFAULT_TENANT_SOURCES, defaultTenant };
  if (!Array.isArray(tenant.from) || tenant.from.length === 0) {
    fail("tenant.from", `must be a non-empty list of sources, got ${describe(tenant.from)}`);
  }
  const sources = (tenant.from as unknown[]).map((entry, index): TenantSource => {
    const where = `tenant.from[${index}]`;
    const source = mapping(entry, where, fail);
    const keys = Object.keys(source);
    if (keys.length !== 1) fail(where, `must have exactly one of header, jwtClaim, host, contextExtension; got ${keys.join(", ") || "none"}`);
    const kind = keys[0];
    const setting = source[kind];
    switch (kind) {
      case "header":
        return { kind: "header", name: headerName(setting, "", `${where}.header`, fail) };
      case "jwtClaim": {
        const claim = optionalString(setting, `${where}.jwtClaim`, fail) as string;
        if (!CLAIM.test(claim)) fail(`${where}.jwtClaim`, `${JSON.stringify(claim)} is not a claim name`);
        return { kind: "jwt-claim", claim };
      }
      case "host": {
        const pattern = optionalString(setting, `${where}.host`, fail) as string;
        const at = pattern.indexOf("{tenant}");
        if (at < 0 || pattern.indexOf("{tenant}", at + 1) >= 0) {
          fail(`${where}.host`, `${JSON.stringify(pattern)} must contain "{tenant}" exactly once, for example "{tenant}.example.com"`);
        }
        const prefix = pattern.slice(0, at);
        const suffix = pattern.slice(at + "{tenant}".length);
        if (!HOST_LITERAL.test(prefix) || !HOST_LITERAL.test(suffix)) {
          fail(`${where}.host`, `${JSON.stringify(pattern)} may contain only lower-case letters, digits, '.', '-' besides {tenant} (no port)`);
        }
        return { kind: "host", pattern, prefix, suffix };
      }
      case "contextExtension": {
        const key = optionalString(setting, `${where}.contextExtension`, fail) as string;
        if (!EXTENSION_KEY.test(key)) fail(`${where}.contextExtension`, `${JSON.stringify(key)} is not a context extension key`);
        return { kind: "context-extension", key };
      }
      default:
        return fail(where, `unknown tenant source ${JSON.stringify(kind)} (expected header, jwtClaim, host or contextExtension)`);
    }
  });
  return { sources, defaultTenant };
}

function compileCredentials(
  value: unknown,
  fail: Fail,
): { sources: readonly CredentialSource[]; apiKeyHeader: string; cookieName: string | undefined; stripCredential: boolean } {
  const credentials = value === undefined ? {} : mapping(value, "credentials", fail);
  onlyKeys(credentials, ["from", "apiKeyHeader", "cookie", "stripUpstream"], "credentials", fail);
  const apiKeyHeader = headerName(credentials.apiKeyHeader, RULES_DEFAULTS.apiKeyHeader, "credentials.apiKeyHeader", fail);
  if (apiKeyHeader === "authorization" || apiKeyHeader === "cookie") {
    fail("credentials.apiKeyHeader", `${JSON.stringify(apiKeyHeader)} is already a credential source of its own`);
  }
  const cookieName = optionalString(credentials.cookie, "credentials.cookie", fail);
  if (cookieName !== undefined && !COOKIE_NAME.test(cookieName)) {
    fail("credentials.cookie", `${JSON.stringify(cookieName)} is not a cookie name`);
  }
  const strip = credentials.stripUpstream ?? RULES_DEFAULTS.stripCredential;
  if (typeof strip !== "boolean") fail("credentials.stripUpstream", `must be true or false, got ${describe(strip)}`);
  let sources: CredentialSource[];
  if (credentials.from === undefined) {
    sources = cookieName === undefined ? ["bearer", "api-key"] : ["bearer", "api-key", "cookie"];
  } else {
    if (!Array.isArray(credentials.from) || credentials.from.length === 0) {
      fail("credentials.from", `must be a non-empty list of bearer, api-key, cookie; got ${describe(credentials.from)}`);
    }
    sources = [];
    (credentials.from as unknown[]).forEach((entry, index) => {
      const where = `credentials.from[${index}]`;
      if (entry !== "bearer" && entry !== "api-key" && entry !== "cookie") {
        fail(where, `unknown credential source ${JSON.stringify(entry)} (expected bearer, api-key or cookie)`);
      }
      if (sources.includes(entry as CredentialSource)) fail(where, `${JSON.stringify(entry)} is listed twice`);
      sources.push(entry as CredentialSource);
    });
    if (sources.includes("cookie") && cookieName === undefined) {
      fail("credentials.from", `"cookie" needs the cookie name in credentials.cookie`);
    }
  }
  return { sources: Object.freeze(sources), apiKeyHeader, cookieName, stripCredential: strip as boolean };
}

function compileOverrides(value: unknown, fail: Fail): { action: string; tenant: string } {
  const overrides = value === undefined ? {} : mapping(value, "overrides", fail);
  onlyKeys(overrides, ["actionKey", "tenantKey"], "overrides", fail);
  const action = optionalString(overrides.actionKey, "overrides.actionKey", fail) ?? RULES_DEFAULTS.actionOverrideKey;
  const tenant = optionalString(overrides.tenantKey, "overrides.tenantKey", fail) ?? RULES_DEFAULTS.tenantOverrideKey;
  if (!EXTENSION_KEY.test(action)) fail("overrides.actionKey", `${JSON.stringify(action)} is not a context extension key`);
  if (!EXTENSION_KEY.test(tenant)) fail("overrides.tenantKey", `${JSON.stringify(tenant)} is not a context extension key`);
  if (action === tenant) fail("overrides", "actionKey and tenantKey must differ");
  return { action, tenant };
}

function compileHeaderNames(value: unknown, fail: Fail): VerdictHeaderNames {
  const headers = value === undefined ? {} : mapping(value, "headers", fail);
  const defaults = RULES_DEFAULTS.headers;
  onlyKeys(headers, Object.keys(defaults), "headers", fail);
  const names: VerdictHeaderNames = {
    principal: headerName(headers.principal, defaults.principal, "headers.principal", fail),
    tenant: headerName(headers.tenant, defaults.tenant, "headers.tenant", fail),
    roles: headerName(headers.roles, defaults.roles, "headers.roles", fail),
    decisionId: headerName(headers.decisionId, defaults.decisionId, "headers.decisionId", fail),
  };
  const all = Object.values(names);
  if (new Set(all).size !== all.length) fail("headers", "the four header names must differ");
  for (const name of all) {
    if (name === "authorization" || name === "cookie") fail("headers", `${JSON.stringify(name)} cannot carry Verdict's answer`);
  }
  return Object.freeze(names);
}

function compileLimits(value: unknown, fail: Fail): RequestLimits {
  const limits = value === undefined ? {} : mapping(value, "limits", fail);
  const defaults = RULES_DEFAULTS.limits;
  onlyKeys(limits, Object.keys(defaults), "limits", fail);
  const read = (key: keyof RequestLimits, max: number): number => {
    const v = limits[key] ?? defaults[key];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > max) {
      fail(`limits.${key}`, `must be an integer from 1 to ${max}, got ${describe(v)}`);
    }
    return v as number;
  };
  return Object.freeze({
    maxHeaders: read("maxHeaders", 10_000),
    maxHeaderValueLength: read("maxHeaderValueLength", 1_048_576),
    maxPathLength: read("maxPathLength", 1_048_576),
  });
}

/** The outcome of one reload attempt. */
export type ReloadResult =
  | { readonly ok: true; readonly changed: boolean }
  | { readonly ok: false; readonly error: string };

/** Options of createRulesHolder. */
export interface RulesHolderOptions {
  /** The rules file (YAML or JSON). */
  readonly path: string;
  /** Interval of the stat check that catches changes fs.watch misses; default 5000 ms, 0 turns it off. */
  readonly pollIntervalMs?: number;
  /** Watch the file's directory with fs.watch; default true. */
  readonly watch?: boolean;
  /** Called after every reload attempt triggered by a change (not by the initial load). */
  readonly onReload?: (result: ReloadResult) => void;
}

/** Holds the current rules, reloading them when the file changes; invalid files keep the last good rules. */
export interface RulesHolder extends RulesSource {
  /** The last good rules. */
  current(): CompiledRules;
  /** Reads the file now; resolves after a read that started after this call. Never rejects. */
  reload(): Promise<ReloadResult>;
  /** Successful loads that changed the rules, including the initial load. */
  readonly loadCount: number;
  /** Reload attempts that failed (unreadable or invalid file) and kept the last good rules. */
  readonly failureCount: number;
  /** The message of the most recent failure, cleared by the next successful load. */
  readonly lastError: string | undefined;
  /** Stops watching and polling. */
  close(): void;
}

const WATCH_DEBOUNCE_MS = 25;

/**
 * Loads the rules file (throwing RulesError, or the read error, when the first load fails) and
 * keeps it current: on fs.watch events in its directory (which also catches Kubernetes ConfigMap
 * symlink swaps), on a periodic stat check, and on reload().
 */
export async function createRulesHolder(options: RulesHolderOptions): Promise<RulesHolder> {
  const { path } = options;
  const pollIntervalMs = options.pollIntervalMs ?? 5000;
  if (!Number.isInteger(pollIntervalMs) || pollIntervalMs < 0) {
    throw new RangeError(`pollIntervalMs must be a non-negative integer, got ${pollIntervalMs}`);
  }
  let signature = await fileSignature(path);
  let text = await readFile(path, "utf8");
  let rules = parseRules(text, path);
  let loadCount = 1;
  let failureCount = 0;
  let lastError: string | undefined;

  const load = async (): Promise<ReloadResult> => {
    try {
      signature = await fileSignature(path);
      const next = await readFile(path, "utf8");
      if (next === text) return { ok: true, changed: false };
      rules = parseRules(next, path);
      text = next;
      loadCount++;
      lastError = undefined;
      return { ok: true, changed: true };
    } catch (error) {
      failureCount++;
      lastError = error instanceof Error ? error.message : String(error);
      return { ok: false, error: lastError };
    }
  };

  let running: Promise<ReloadResult> | undefined;
  let queued: Promise<ReloadResult> | undefined;
  const reload = (): Promise<ReloadResult> => {
    if (running === undefined) {
      running = load().finally(() => {
        running = undefined;
      });
      return running;
    }
    queued ??= running.then(() => {
      queued = undefined;
      return reload();
    });
    return queued;
  };
  const reloadAndReport = (): void => {
    void reload().then((result) => options.onReload?.(result));
  };

  let debounce: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  if (options.watch ?? true) {
    try {
      watcher = watch(dirname(path), { persistent: false }, () => {
        clearTimeout(debounce);
        debounce = setTimeout(reloadAndReport, WATCH_DEBOUNCE_MS);
        debounce.unref();
      });
      watcher.on("error", () => {
        watcher?.close();
        watcher = undefined;
      });
    } catch {
      watcher = undefined; // polling still catches changes
    }
  }
  const poller =
    pollIntervalMs > 0
      ? setInterval(() => {
          void fileSignature(path).then((now) => {
            if (now !== signature) reloadAndReport();
          });
        }, pollIntervalMs)
      : undefined;
  poller?.unref();

  return {
    current: () => rules,
    reload,
    get loadCount() {
      return loadCount;
    },
    get failureCount() {
      return failureCount;
    },
    get lastError() {
      return lastError;
    },
    close() {
      clearInterval(poller);
      clearTimeout(debounce);
      watcher?.close();
      watcher = undefined;
    },
  };
}

async function fileSignature(path: string): Promise<string> {
  try {
    const s = await stat(path);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return "missing";
  }
}
