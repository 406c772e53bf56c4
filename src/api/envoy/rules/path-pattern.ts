/**
 * Path patterns of the rules file (`/v1/orders/*`, `/public/**`): compiled once into segments and
 * matched against request paths without allocating.
 */

const PATH_SEGMENT = /^[A-Za-z0-9\-._~!$&'()+,;=:@%]*$/;

/** A path pattern as segments: a literal, "*" (one non-empty segment) or "**" (any rest, last only). */
export type PathPattern = readonly string[];

/** Compiles a path pattern; returns the reason it is malformed as a string instead when it is. */
export function compilePathPattern(pattern: string): PathPattern | string {
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
  return Object.freeze(segments);
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

/** Matches `path[0, end)` (which starts with '/') against compiled segments without allocating. */
export function matchPath(segments: PathPattern, path: string, end: number): boolean {
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
