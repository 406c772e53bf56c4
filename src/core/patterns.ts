/**
 * Permission patterns and actions.
 *
 * An action is `verb:resource`, for example `read:orders`. A pattern is an action, or one of the
 * wildcard forms `*` (everything), `verb:*` (one verb on every resource) and `*:resource` (every
 * verb on one resource). A `*` stands only for a whole part: `read:ord*` is not a pattern.
 */

const VERB = "[A-Za-z][A-Za-z0-9_.-]{0,63}";
const RESOURCE = "[A-Za-z0-9_./-]{1,190}";
const ACTION_RE = new RegExp(`^${VERB}:${RESOURCE}$`);
const VERB_RE = new RegExp(`^${VERB}$`);
const RESOURCE_RE = new RegExp(`^${RESOURCE}$`);

/** Longest action or pattern accepted. */
export const MAX_ACTION_LENGTH = 255;

/** True when `action` is a well-formed concrete action (no wildcards). */
export function isValidAction(action: string): boolean {
  return action.length <= MAX_ACTION_LENGTH && ACTION_RE.test(action);
}

/** Thrown when a permission pattern is malformed; the message names the pattern. */
export class PatternError extends Error {
  constructor(
    readonly pattern: string,
    reason: string,
  ) {
    super(`invalid permission pattern ${JSON.stringify(pattern)}: ${reason}`);
    this.name = "PatternError";
  }
}

/** Returns the reason `pattern` is malformed, or undefined when it is valid. */
export function patternProblem(pattern: string): string | undefined {
  if (pattern === "*") return undefined;
  if (pattern.length === 0) return "empty";
  if (pattern.length > MAX_ACTION_LENGTH) return `longer than ${MAX_ACTION_LENGTH} characters`;
  const colon = pattern.indexOf(":");
  if (colon < 0) return 'expected "verb:resource", "verb:*", "*:resource" or "*"';
  const verb = pattern.slice(0, colon);
  const resource = pattern.slice(colon + 1);
  if (verb === "*" && resource === "*") return 'use "*" for everything';
  if (verb !== "*" && !VERB_RE.test(verb)) {
    return verb.includes("*")
      ? "a wildcard must stand for the whole verb"
      : "the verb must start with a letter and contain only letters, digits, '_', '.', '-'";
  }
  if (resource !== "*" && !RESOURCE_RE.test(resource)) {
    return resource.includes("*")
      ? "a wildcard must stand for the whole resource"
      : "the resource must be 1 to 190 of letters, digits, '_', '.', '/', '-'";
  }
  return undefined;
}

/** Throws PatternError for the first malformed pattern. */
export function validatePatterns(patterns: readonly string[]): void {
  for (const pattern of patterns) {
    const problem = patternProblem(pattern);
    if (problem !== undefined) throw new PatternError(pattern, problem);
  }
}

/**
 * True when every action valid `inner` permits is permitted by one of the valid `outer` patterns:
 * `*` covers everything, `read:*` covers `read:orders` and `read:*`, `*:orders` covers
 * `read:orders` and `*:orders`; nothing but `*` covers `*`.
 */
export function patternsCover(outer: readonly string[], inner: string): boolean {
  if (outer.includes("*")) return true;
  if (inner === "*") return false;
  const colon = inner.indexOf(":");
  const verb = inner.slice(0, colon);
  const resource = inner.slice(colon + 1);
  return outer.some((pattern) => {
    const c = pattern.indexOf(":");
    const v = pattern.slice(0, c);
    const r = pattern.slice(c + 1);
    return (v === "*" || v === verb) && (r === "*" || r === resource);
  });
}

/** A compiled set of patterns: answers whether an action is permitted in O(1). */
export interface Matcher {
  /** True when some pattern of the set permits `action` (which must be a valid action). */
  matches(action: string): boolean;
  /** The patterns it was compiled from. */
  readonly patterns: readonly string[];
}

/** A matcher that permits nothing. */
export const NOTHING: Matcher = { matches: () => false, patterns: [] };

/** A matcher that permits everything. */
export const EVERYTHING: Matcher = { matches: () => true, patterns: ["*"] };

/**
 * Compiles valid patterns into a matcher (validate them first with validatePatterns: a
 * malformed pattern here is a programming error and throws).
 */
export function compilePatterns(patterns: readonly string[]): Matcher {
  validatePatterns(patterns);
  if (patterns.length === 0) return NOTHING;
  if (patterns.includes("*")) return EVERYTHING;
  const exact = new Set<string>();
  const verbs = new Set<string>();
  const resources = new Set<string>();
  for (const pattern of patterns) {
    const colon = pattern.indexOf(":");
    const verb = pattern.slice(0, colon);
    const resource = pattern.slice(colon + 1);
    if (resource === "*") verbs.add(verb);
    else if (verb === "*") resources.add(resource);
    else exact.add(pattern);
  }
  const frozen = Object.freeze([...patterns]);
  const hasVerbs = verbs.size > 0;
  const hasResources = resources.size > 0;
  return {
    patterns: frozen,
    matches(action: string): boolean {
      if (exact.has(action)) return true;
      if (!hasVerbs && !hasResources) return false;
      const colon = action.indexOf(":");
      return (hasVerbs && verbs.has(action.slice(0, colon))) || (hasResources && resources.has(action.slice(colon + 1)));
    },
  };
}

/** The union of several matchers. */
export function unionMatchers(matchers: readonly Matcher[]): Matcher {
  if (matchers.length === 0) return NOTHING;
  if (matchers.length === 1) return matchers[0];
  if (matchers.some((m) => m === EVERYTHING)) return EVERYTHING;
  return compilePatterns([...new Set(matchers.flatMap((m) => m.patterns))]);
}
