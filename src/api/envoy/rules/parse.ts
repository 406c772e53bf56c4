/**
 * Parses a rules file's text (YAML, or JSON, which is YAML) into CompiledRules: the document is
 * checked for unknown keys, each section is validated by its compiler in sections.ts, and the
 * route rules are indexed by method so that a request scans only the rules that can match it.
 */
import { parseDocument } from "yaml";
import { describe, mapping, onlyKeys, type Fail } from "./fields.js";
import { conventionalAction } from "./conventional-action.js";
import { RULES_DEFAULTS, RulesError, type CompiledRules, type UnmatchedPolicy } from "./model.js";
import { upperCaseMethod } from "./methods.js";
import { caseless, matchPath, pathEnd } from "./path-pattern.js";
import { compileRouteLimits } from "./route-limits.js";
import {
  compileCredentials,
  compileExempt,
  compileHeaderNames,
  compileLimits,
  compileOverrides,
  compileRouteRules,
  compileTenant,
  type CompiledRule,
} from "./sections.js";

/** The keys a rules file may have at its top level. */
const TOP_LEVEL_KEYS = ["rules", "unmatched", "caseSensitive", "exempt", "tenant", "credentials", "overrides", "failureStatus", "headers", "limits", "rateLimits"];

/** Parses, validates and compiles a rules file's text (YAML, or JSON, which is YAML). */
export function parseRules(text: string, origin = "rules"): CompiledRules {
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new RulesError(origin, "syntax", firstLine(doc.errors[0].message));
  }
  const fail: Fail = (where, reason) => {
    throw new RulesError(origin, where, reason);
  };
  const root = mapping(doc.toJS() as unknown, "top level", fail);
  onlyKeys(root, TOP_LEVEL_KEYS, "top level", fail);

  const unmatched = root.unmatched ?? RULES_DEFAULTS.unmatched;
  if (unmatched !== "deny" && unmatched !== "conventional") {
    fail("unmatched", `must be deny or conventional, got ${describe(unmatched)}`);
  }
  const conventional = unmatched === "conventional";
  const caseSensitive = root.caseSensitive ?? RULES_DEFAULTS.caseSensitive;
  if (typeof caseSensitive !== "boolean") fail("caseSensitive", `must be true or false, got ${describe(caseSensitive)}`);
  const ignoreCase = caseSensitive === false;
  const rules = compileRouteRules(conventional ? (root.rules ?? []) : root.rules, conventional, ignoreCase, fail);
  const exempt = compileExempt(root.exempt, ignoreCase, fail);
  const tenant = compileTenant(root.tenant, fail);
  const credentials = compileCredentials(root.credentials, fail);
  const overrides = compileOverrides(root.overrides, fail);
  const failureStatus = root.failureStatus ?? RULES_DEFAULTS.failureStatus;
  if (failureStatus !== 403 && failureStatus !== 503) {
    fail("failureStatus", `must be 503 or 403, got ${JSON.stringify(failureStatus)}`);
  }
  const headers = compileHeaderNames(root.headers, fail);
  const limits = compileLimits(root.limits, fail);
  const rateLimits = compileRouteLimits(root.rateLimits, ignoreCase, fail);

  const byMethod = new Map<string, readonly CompiledRule[]>();
  for (const method of rules.methods) {
    byMethod.set(method, rules.list.filter((r) => r.methods === undefined || r.methods.includes(method)).map((r) => r.rule));
  }
  const anyMethod = rules.list.filter((r) => r.methods === undefined).map((r) => r.rule);

  return Object.freeze({
    actionFor(method: string, requestPath: string): string | undefined {
      const known = byMethod.get(method);
      // "get" is checked as GET (as route limits count it): never the '*' rules alone, which may be wider.
      const upper = known === undefined ? upperCaseMethod(method) : method;
      const candidates = known ?? byMethod.get(upper) ?? anyMethod;
      const path = ignoreCase ? caseless(requestPath) : requestPath;
      const end = pathEnd(path);
      for (const rule of candidates) {
        if (matchPath(rule.segments, path, end, ignoreCase)) return rule.action;
      }
      if (!conventional) return undefined;
      return conventionalAction(upper, ignoreCase ? path.slice(0, end).toLowerCase() : path.slice(0, end));
    },
    unmatched: unmatched as UnmatchedPolicy,
    caseSensitive: !ignoreCase,
    isExempt(requestPath: string): boolean {
      const path = ignoreCase ? caseless(requestPath) : requestPath;
      const end = pathEnd(path);
      for (const segments of exempt) {
        if (matchPath(segments, path, end, ignoreCase)) return true;
      }
      return false;
    },
    ruleCount: rules.list.length,
    tenantSources: tenant.sources,
    defaultTenant: tenant.defaultTenant,
    credentialSources: credentials.sources,
    apiKeyHeader: credentials.apiKeyHeader,
    cookieName: credentials.cookieName,
    stripUpstream: credentials.stripUpstream,
    actionOverrideKey: overrides.action,
    tenantOverrideKey: overrides.tenant,
    failureStatus: failureStatus as 403 | 503,
    headers,
    limits,
    rateLimits,
  });
}

/**
 * The rules used when no rules file is configured: every default, and `unmatched: conventional`;
 * with `sessionCookie`, that cookie is a credential too (after bearer and API key).
 */
export function builtInRules(sessionCookie?: string): CompiledRules {
  const cookie = sessionCookie === undefined ? "" : `credentials:\n  cookie: ${JSON.stringify(sessionCookie)}\n`;
  return parseRules(`unmatched: conventional\n${cookie}`, "built-in rules");
}

function firstLine(message: string): string {
  const newline = message.indexOf("\n");
  return newline < 0 ? message : message.slice(0, newline);
}
