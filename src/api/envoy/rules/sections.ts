/**
 * The sections of the rules file, one validator and compiler each: route rules, exempt paths,
 * tenant sources, credential sources, context-extension overrides, header names and request
 * limits. A new section is one more function here and one more key in parse.ts.
 */
import { isValidTenantId } from "../../../core/names.js";
import { isValidAction } from "../../../core/patterns.js";
import { describe, type Fail, headerName, mapping, onlyKeys, optionalString } from "./fields.js";
import { RULES_DEFAULTS, type CredentialSource, type RequestLimits, type StripPolicy, type TenantSource, type VerdictHeaderNames } from "./model.js";
import { withHead } from "./methods.js";
import { compilePathPattern, type PathPattern } from "./path-pattern.js";

const COOKIE_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
const METHOD = /^[A-Z]+$/;
const HOST_LITERAL = /^[a-z0-9.-]*$/;
const EXTENSION_KEY = /^[A-Za-z0-9_.:/-]+$/;
const CLAIM = /^[A-Za-z0-9_.:/-]+$/;

/** A compiled route rule: a path pattern and the action it performs. */
export interface CompiledRule {
  readonly segments: PathPattern;
  readonly action: string;
}

/** A route rule with the methods it applies to (undefined: every method). */
export interface ParsedRule {
  readonly methods: readonly string[] | undefined;
  readonly rule: CompiledRule;
}

/** Validates and compiles the `rules` list; `ignoreCase` compiles the paths for caseSensitive: false. */
export function compileRouteRules(
  value: unknown,
  mayBeEmpty: boolean,
  ignoreCase: boolean,
  fail: Fail,
): { list: readonly ParsedRule[]; methods: ReadonlySet<string> } {
  if (!Array.isArray(value) || (value.length === 0 && !mayBeEmpty)) {
    fail("rules", `must be a non-empty list (or set "unmatched: conventional"), got ${describe(value)}`);
  }
  const list: ParsedRule[] = [];
  const methods = new Set<string>();
  const seen = new Map<string, number>();
  const impliedHead = new Set<string>();
  const seenAsWritten = new Set<string>();
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
    const segments = compilePathPattern(pathPart, ignoreCase);
    if (typeof segments === "string") fail(named, segments);
    if (!isValidAction(action)) fail(named, `action ${JSON.stringify(action)} is not "verb:resource" (for example "read:orders")`);
    const samePath = ignoreCase ? pathPart.toLowerCase() : pathPart;
    for (const method of ruleMethods ?? ["*"]) {
      const key = `${method} ${samePath}`;
      const earlier = seen.get(key);
      if (earlier !== undefined) {
        const why = impliedHead.has(key)
          ? " (a rule for GET applies to HEAD too: put the HEAD rule first)"
          : ignoreCase && !seenAsWritten.has(`${method} ${pathPart}`) ? " (paths are compared ignoring case)" : "";
        fail(named, `duplicates rules[${earlier}] for ${key}${why}`);
      }
      seen.set(key, index);
      seenAsWritten.add(`${method} ${pathPart}`);
      if (method !== "*") methods.add(method);
    }
    if (ruleMethods !== undefined && ruleMethods.includes("GET") && !ruleMethods.includes("HEAD")) {
      ruleMethods = withHead(ruleMethods);
      methods.add("HEAD");
      // A HEAD rule written before this one keeps HEAD (first match wins); one written after never could.
      const head = `HEAD ${samePath}`;
      if (!seen.has(head)) {
        seen.set(head, index);
        impliedHead.add(head);
      }
    }
    list.push({ methods: ruleMethods, rule: { segments: segments as PathPattern, action } });
  });
  return { list, methods };
}

/** Validates and compiles the `exempt` path patterns (for caseSensitive: false with `ignoreCase`). */
export function compileExempt(value: unknown, ignoreCase: boolean, fail: Fail): readonly PathPattern[] {
  if (value === undefined) return RULES_DEFAULTS.exempt.map((p) => compilePathPattern(p, ignoreCase) as PathPattern);
  if (!Array.isArray(value)) fail("exempt", `must be a list of path patterns, got ${describe(value)}`);
  return (value as unknown[]).map((pattern, index) => {
    const where = `exempt[${index}]`;
    if (typeof pattern !== "string") fail(where, `must be a path pattern, got ${describe(pattern)}`);
    const segments = compilePathPattern(pattern as string, ignoreCase);
    if (typeof segments === "string") fail(`${where} (${JSON.stringify(pattern)})`, segments);
    return segments as PathPattern;
  });
}

const DEFAULT_TENANT_SOURCES: readonly TenantSource[] = Object.freeze([{ kind: "header", name: RULES_DEFAULTS.tenantHeader }]);

/** Validates the `tenant` section: where the tenant comes from, and its default. */
export function compileTenant(value: unknown, fail: Fail): { sources: readonly TenantSource[]; defaultTenant: string | undefined } {
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

/** Validates the `credentials` section: sources, API key header, cookie name, stripping. */
export function compileCredentials(
  value: unknown,
  fail: Fail,
): { sources: readonly CredentialSource[]; apiKeyHeader: string; cookieName: string | undefined; stripUpstream: StripPolicy } {
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
  const strip =
    stripPolicy(credentials.stripUpstream ?? RULES_DEFAULTS.stripUpstream) ??
    fail("credentials.stripUpstream", `must be all, used or none (true is all, false is none), got ${describe(credentials.stripUpstream)}`);
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
  return { sources: Object.freeze(sources), apiKeyHeader, cookieName, stripUpstream: strip };
}

function stripPolicy(value: unknown): StripPolicy | undefined {
  if (value === true) return "all";
  if (value === false) return "none";
  return value === "all" || value === "used" || value === "none" ? value : undefined;
}

/** Validates the `overrides` section: the context-extension keys that replace action and tenant. */
export function compileOverrides(value: unknown, fail: Fail): { action: string; tenant: string } {
  const overrides = value === undefined ? {} : mapping(value, "overrides", fail);
  onlyKeys(overrides, ["actionKey", "tenantKey"], "overrides", fail);
  const action = optionalString(overrides.actionKey, "overrides.actionKey", fail) ?? RULES_DEFAULTS.actionOverrideKey;
  const tenant = optionalString(overrides.tenantKey, "overrides.tenantKey", fail) ?? RULES_DEFAULTS.tenantOverrideKey;
  if (!EXTENSION_KEY.test(action)) fail("overrides.actionKey", `${JSON.stringify(action)} is not a context extension key`);
  if (!EXTENSION_KEY.test(tenant)) fail("overrides.tenantKey", `${JSON.stringify(tenant)} is not a context extension key`);
  if (action === tenant) fail("overrides", "actionKey and tenantKey must differ");
  return { action, tenant };
}

/** Validates the `headers` section: the names of the headers Verdict adds. */
export function compileHeaderNames(value: unknown, fail: Fail): VerdictHeaderNames {
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

/** Validates the `limits` section: request-size limits. */
export function compileLimits(value: unknown, fail: Fail): RequestLimits {
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
