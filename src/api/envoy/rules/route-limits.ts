/**
 * The `rateLimits` section of the rules file: routes with their own rate limits, or with none.
 *
 * ```yaml
 * rateLimits:
 *   includeHeaders: true
 *   routes:
 *     /api/chat/*: 30/min
 *     POST /api/auth/login: 10/min burst 5
 *     /api/export/**: 100/min 1000/hour shadow
 *     /api/status: none
 * ```
 *
 * A key is a path pattern (every method) or "<METHODS> <PATH>" as in `rules[].match` (GET
 * includes HEAD); the first entry that matches a request, in file order, applies. A value is `none`, or one or two windows
 * (`N/min`, `N/hour`) with optional `burst N` and `shadow`, validated as the Admin API validates
 * limits (rateLimitSpecProblem).
 */
import { combineLimits, rateLimitSpecProblem, type RateLimitSpec } from "../../../core/rate-limit.js";
import type { RouteLimit } from "../../../engine/rate-limiter.js";
import { describe, type Fail, mapping, onlyKeys } from "./fields.js";
import { caseless, compilePathPattern, matchPath, pathEnd, type PathPattern } from "./path-pattern.js";
import { upperCaseMethod, withHead } from "./methods.js";

const METHOD = /^[A-Z]+$/;
const WINDOW = /^(\d+)\/(min|minute|hour|h)$/;
/** Contributes no bound: routes get no default limits of their own. */
const NO_DEFAULTS: RateLimitSpec = Object.freeze({ perMinute: 0, perHour: 0, burst: 0, shadow: false });

/** A route's entry: its limits (counted per credential and route), or `none` (off: neither counted nor limited). */
export interface RouteRateLimit extends RouteLimit {
  /** The limit as written ("30/min burst 5", "none"). */
  readonly text: string;
}

/** The compiled `rateLimits` section. */
export interface RouteLimits {
  /**
   * The entry of the first route matching `method` and `path` (query and a trailing '/' ignored,
   * method in any case, path in any case with caseSensitive: false), or undefined.
   */
  forRequest(method: string, path: string): RouteRateLimit | undefined;
  /** Number of route entries. */
  readonly count: number;
  /** Whether allowed responses carry X-RateLimit-* headers (429s always do). */
  readonly includeHeaders: boolean;
}

interface Entry {
  readonly methods: readonly string[] | undefined;
  readonly segments: PathPattern;
  readonly limit: RouteRateLimit;
}

/** Validates and compiles the `rateLimits` section; `ignoreCase` matches routes as caseSensitive: false asks. */
export function compileRouteLimits(value: unknown, ignoreCase: boolean, fail: Fail): RouteLimits {
  const section = value === undefined ? {} : mapping(value, "rateLimits", fail);
  onlyKeys(section, ["includeHeaders", "routes"], "rateLimits", fail);
  const includeHeaders = section.includeHeaders ?? false;
  if (typeof includeHeaders !== "boolean") fail("rateLimits.includeHeaders", `must be true or false, got ${describe(includeHeaders)}`);
  const routes = section.routes === undefined ? {} : mapping(section.routes, "rateLimits.routes", fail);
  const entries: Entry[] = [];
  for (const [key, spec] of Object.entries(routes)) {
    const where = `rateLimits.routes[${JSON.stringify(key)}]`;
    const { methods, segments } = routeKey(key, ignoreCase, where, fail);
    entries.push({ methods, segments, limit: routeLimit(key, spec, where, fail) });
  }
  const list = Object.freeze(entries);
  return Object.freeze({
    forRequest(method: string, requestPath: string): RouteRateLimit | undefined {
      if (list.length === 0) return undefined;
      const path = ignoreCase ? caseless(requestPath) : requestPath;
      const end = pathEnd(path);
      // Most upstreams serve "/login/" as "/login": a trailing '/' must not escape a route's limit.
      const slash = end > 1 && path.charCodeAt(end - 1) === 47; /* / */
      const upper = upperCaseMethod(method);
      for (const entry of list) {
        if (entry.methods !== undefined && !entry.methods.includes(upper)) continue;
        if (matchPath(entry.segments, path, end, ignoreCase) || (slash && matchPath(entry.segments, path, end - 1, ignoreCase))) return entry.limit;
      }
      return undefined;
    },
    count: list.length,
    includeHeaders: includeHeaders as boolean,
  });
}

function routeKey(key: string, ignoreCase: boolean, where: string, fail: Fail): { methods: readonly string[] | undefined; segments: PathPattern } {
  const trimmed = key.trim();
  const space = trimmed.indexOf(" ");
  let methods: string[] | undefined;
  let pathPart = trimmed;
  if (space >= 0) {
    const methodPart = trimmed.slice(0, space);
    pathPart = trimmed.slice(space + 1).trim();
    if (methodPart !== "*") {
      methods = methodPart.split(",");
      for (const method of methods) {
        if (!METHOD.test(method)) fail(where, `method ${JSON.stringify(method)} must be upper-case letters, a comma-separated list of them, or '*'`);
      }
    }
  }
  const segments = compilePathPattern(pathPart, ignoreCase);
  if (typeof segments === "string") fail(where, `${segments} (a route is "<PATH>" or "<METHOD> <PATH>", for example "/api/chat/*")`);
  return { methods: methods === undefined ? undefined : Object.freeze(withHead(methods)), segments: segments as PathPattern };
}

function routeLimit(id: string, value: unknown, where: string, fail: Fail): RouteRateLimit {
  if (typeof value !== "string" || value.trim() === "") {
    fail(where, `must be a limit like "30/min", "10/min burst 5", "1000/hour shadow" or "none", got ${describe(value)}`);
  }
  const text = (value as string).trim().replace(/\s+/g, " ");
  if (text === "none") return Object.freeze({ id, text, limits: combineLimits([], NO_DEFAULTS), off: true });
  const spec = parseSpec(text, where, fail);
  if (spec.burst > 0 && spec.perMinute === 0) fail(where, `${JSON.stringify(text)}: burst caps a 3-second slot of the minute and needs an N/min limit`);
  const problem = rateLimitSpecProblem(spec);
  if (problem !== undefined) fail(where, `${JSON.stringify(text)}: ${problem.replaceAll("per_minute", "/min").replaceAll("per_hour", "/hour")}`);
  return Object.freeze({ id, text, limits: combineLimits([{ scope: "route", spec }], NO_DEFAULTS), off: false });
}

function parseSpec(text: string, where: string, fail: Fail): RateLimitSpec {
  let perMinute: number | undefined;
  let perHour: number | undefined;
  let burst: number | undefined;
  let shadow = false;
  const tokens = text.split(" ");
  const number = (token: string | undefined, what: string): number => {
    if (token === undefined || !/^\d+$/.test(token)) fail(where, `${JSON.stringify(text)}: ${what} needs a whole number after it`);
    return Number(token);
  };
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    const window = WINDOW.exec(token);
    if (window !== null) {
      const count = Number(window[1]);
      const minute = window[2] === "min" || window[2] === "minute";
      if ((minute ? perMinute : perHour) !== undefined) fail(where, `${JSON.stringify(text)}: the ${minute ? "/min" : "/hour"} limit is given twice`);
      if (count === 0) fail(where, `${JSON.stringify(text)}: ${token} admits nothing; use "none" to switch limits off, or deny the route in rules`);
      if (minute) perMinute = count;
      else perHour = count;
    } else if (token === "burst") {
      if (burst !== undefined) fail(where, `${JSON.stringify(text)}: burst is given twice`);
      burst = number(tokens[++i], "burst");
      if (burst === 0) fail(where, `${JSON.stringify(text)}: burst 0 admits nothing; leave burst out for no burst cap`);
    } else if (token === "shadow") {
      if (shadow) fail(where, `${JSON.stringify(text)}: shadow is given twice`);
      shadow = true;
    } else if (token === "none") {
      fail(where, `${JSON.stringify(text)}: "none" stands alone`);
    } else if (/^\d+\/\w+$/.test(token)) {
      fail(where, `${JSON.stringify(text)}: ${token}: the windows are /min and /hour (use burst N to cap a 3-second slot)`);
    } else {
      fail(where, `${JSON.stringify(text)}: unexpected ${JSON.stringify(token)} (expected N/min, N/hour, burst N, shadow, or none alone)`);
    }
  }
  if (perMinute === undefined && perHour === undefined) fail(where, `${JSON.stringify(text)}: needs N/min or N/hour`);
  return { perMinute: perMinute ?? 0, perHour: perHour ?? 0, burst: burst ?? 0, shadow };
}
