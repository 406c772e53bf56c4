/**
 * Path patterns of the rules file (`/v1/orders/*`, `/public/**`): compiled once into segments and
 * matched against request paths without allocating.
 */

const PATH_SEGMENT = /^[A-Za-z0-9\-._~!$&'()+,;=:@%]*$/;

/** A path pattern as segments: a literal, "*" (one non-empty segment) or "**" (any rest, last only). */
export type PathPattern = readonly string[];

/**
 * Compiles a path pattern; returns the reason it is malformed as a string instead when it is. With
 * `ignoreCase`, literal segments are kept lower-cased, for matchPath's `ignoreCase`.
 */
export function compilePathPattern(pattern: string, ignoreCase = false): PathPattern | string {
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
    } else if (segment.includes("%")) {
      const decoded = decodeSegment(segment);
      if (decoded === undefined) return `segment ${JSON.stringify(segment)} has a malformed percent-encoding`;
      if (/[/\\?#;]/.test(decoded) || decoded === "." || decoded === "..") {
        return `segment ${JSON.stringify(segment)} encodes '/', '\\', '?', '#', ';' or a dot segment`;
      }
      segments[i] = decoded;
    }
  }
  return Object.freeze(ignoreCase ? segments.map((segment) => segment.toLowerCase()) : segments);
}

/** Request paths are matched percent-decoded (see request-path.ts), so patterns are compared decoded. */
function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/** Index of the end of the path proper: the first '?' or '#', or the length. */
export function pathEnd(path: string): number {
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 63 /* ? */ || c === 35 /* # */) return i;
  }
  return path.length;
}

/**
 * Matches `path[0, end)` (which starts with '/') against compiled segments without allocating.
 * With `ignoreCase` (segments compiled with it), ASCII letters of the path are compared lower-cased;
 * a path with other characters must have gone through caseless() first.
 */
export function matchPath(segments: PathPattern, path: string, end: number, ignoreCase = false): boolean {
  if (end === 0 || path.charCodeAt(0) !== 47 /* / */) return false;
  let pos = 1;
  for (const segment of segments) {
    if (segment === "**") return true;
    if (pos > end) return false;
    let next = path.indexOf("/", pos);
    if (next < 0 || next > end) next = end;
    if (segment === "*") {
      if (next === pos) return false;
    } else if (next - pos !== segment.length || !(ignoreCase ? startsWithIgnoringCase(path, segment, pos) : path.startsWith(segment, pos))) {
      return false;
    }
    pos = next + 1;
  }
  return pos > end;
}

/** Whether `path` holds the lower-case `segment` at `pos`, its ASCII letters compared lower-cased. */
function startsWithIgnoringCase(path: string, segment: string, pos: number): boolean {
  for (let i = 0; i < segment.length; i++) {
    let c = path.charCodeAt(pos + i);
    if (c >= 65 && c <= 90) c += 32; /* A-Z */
    if (c !== segment.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * `path` ready for matchPath's `ignoreCase`: the same string when its path part (before any query)
 * is ASCII, which matchPath lower-cases as it compares (no allocation); otherwise its path part
 * lower-cased (JavaScript's Unicode toLowerCase), as the patterns were.
 */
export function caseless(path: string): string {
  const end = pathEnd(path);
  for (let i = 0; i < end; i++) {
    if (path.charCodeAt(i) > 0x7f) return path.slice(0, end).toLowerCase();
  }
  return path;
}
