/**
 * The request path as an upstream may read it. Envoy hands the adapter the raw `:path`; the
 * service behind Envoy may percent-decode it, turn '\' into '/', drop `;` path parameters, merge
 * '//' and resolve '.' and '..'. When those steps change the path's segments, the rules would be
 * matched against one path and the upstream would serve another (`/public/..%2fadmin` is exempt as
 * written and `/admin` once decoded). Such a path is refused by default, or, when the operator opts
 * in, matched in its normalised form. What cannot be normalised reliably (malformed or double
 * percent-encoding, control characters, characters that Unicode normalisation turns into
 * separators) is refused either way.
 */

/** What to do with a path whose decoded form has other segments than the raw one. */
export type AmbiguousPathPolicy = "deny" | "normalize";

/** The path to match rules against, or why the request must be refused (HTTP 400). */
export type ExaminedPath = { readonly path: string; readonly problem?: undefined } | { readonly path?: undefined; readonly problem: string };

const DOT_SEGMENT = "the path has a '.' or '..' segment (enable path normalization in Envoy)";
const REFUSED_SUFFIX = " (normalise paths in Envoy, or set VERDICT_EXT_AUTHZ_AMBIGUOUS_PATHS=normalize)";

/**
 * Examines `raw` (a `:path` starting with '/', query included). Paths made only of plain segments,
 * the common case, are returned as they are after one scan without allocating.
 */
export function examinePath(raw: string, policy: AmbiguousPathPolicy): ExaminedPath {
  return isPlain(raw) ? { path: raw } : examineSlowly(raw, policy);
}

/**
 * True when the path before its query has no '%', '\', ';', '#', control or non-ASCII character,
 * no empty segment before the last and no '.' or '..' segment: every upstream reads it as written.
 */
function isPlain(raw: string): boolean {
  let segmentStart = 1;
  for (let i = 1; i <= raw.length; i++) {
    const c = i < raw.length ? raw.charCodeAt(i) : 63; /* the end reads as '?' */
    if (c === 47 /* / */ || c === 63 /* ? */) {
      const length = i - segmentStart;
      if (length === 0 && c === 47) return false;
      if (length === 1 && raw.charCodeAt(segmentStart) === 46) return false;
      if (length === 2 && raw.charCodeAt(segmentStart) === 46 && raw.charCodeAt(segmentStart + 1) === 46) return false;
      if (c === 63) return true;
      segmentStart = i + 1;
    } else if (c === 37 /* % */ || c === 92 /* \ */ || c === 59 /* ; */ || c === 35 /* # */ || c < 0x20 || c >= 0x7f) {
      return false;
    }
  }
  return true;
}

/** Why a decoded segment cannot be matched at all, or undefined. */
function unusable(decoded: string): string | undefined {
  let ascii = true;
  for (let i = 0; i < decoded.length; i++) {
    const c = decoded.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return "the path has a control character";
    if (c === 37 /* % */ && /^%[0-9a-fA-F]{2}/.test(decoded.slice(i, i + 3))) return "the path is percent-encoded twice";
    if (c === 63 /* ? */ || c === 35 /* # */) return "the path has an encoded '?' or '#'";
    if (c > 0x7f) ascii = false;
  }
  if (!ascii) {
    const folded = decoded.normalize("NFKC");
    if (/[/\\;?#%]/.test(folded) || folded === "." || folded === "..") {
      return "the path has characters that Unicode normalisation may read as '/', '\\', ';', '.', '?', '#' or '%'";
    }
  }
  return undefined;
}

/** Why an upstream may split or resolve this raw segment differently, or undefined. */
function segmentAmbiguity(segment: string, decoded: string, last: boolean): string | undefined {
  if (segment === "" && !last) return "the path has an empty segment ('//')";
  if (segment.includes("\\")) return "the path has a '\\'";
  if (decoded.includes("/") || decoded.includes("\\")) return "the path has an encoded '/' or '\\' (%2F, %5C)";
  if (decoded.includes(";")) return "the path has ';' path parameters";
  if (decoded === "." || decoded === "..") return DOT_SEGMENT;
  return undefined;
}

function examineSlowly(raw: string, policy: AmbiguousPathPolicy): ExaminedPath {
  let end = raw.length;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 63 /* ? */ || c === 35 /* # */) {
      end = i;
      break;
    }
  }
  const fragment = raw.charCodeAt(end) === 35;
  // A request target has no fragment (RFC 9112 section 3.2): everything after '#' goes, query included.
  const query = fragment ? "" : raw.slice(end);
  const rawSegments = raw.slice(1, end).split("/");
  const decoded: string[] = [];
  let ambiguity = fragment ? "the path has a fragment ('#')" : undefined;
  for (let i = 0; i < rawSegments.length; i++) {
    const segment = rawSegments[i];
    for (let j = 0; j < segment.length; j++) {
      const c = segment.charCodeAt(j);
      if (c < 0x20 || c === 0x7f) return { problem: "the path has a control character" };
    }
    let text: string;
    try {
      text = decodeURIComponent(segment);
    } catch {
      return { problem: "the path's percent-encoding is malformed" };
    }
    const problem = unusable(text);
    if (problem !== undefined) return { problem };
    decoded.push(text);
    ambiguity ??= segmentAmbiguity(segment, text, i === rawSegments.length - 1);
  }
  // Same segments: match the decoded form, as every upstream that decodes reads it.
  if (ambiguity === undefined) return { path: `/${decoded.join("/")}${query}` };
  if (policy === "deny") return { problem: ambiguity === DOT_SEGMENT ? DOT_SEGMENT : ambiguity + REFUSED_SUFFIX };
  return { path: normalise(decoded) + query };
}

/**
 * The path an upstream that does every normalisation would serve, from the decoded segments: '\'
 * read as '/', `;` parameters dropped, empty segments merged, '.' and '..' resolved (never above
 * the root).
 */
function normalise(decoded: readonly string[]): string {
  const out: string[] = [];
  const pieces = decoded.flatMap((segment) => segment.split(/[/\\]/));
  for (const piece of pieces) {
    const semicolon = piece.indexOf(";");
    const name = semicolon < 0 ? piece : piece.slice(0, semicolon);
    if (name === "" || name === ".") continue;
    if (name === "..") out.pop();
    else out.push(name);
  }
  const trailing = out.length > 0 && pieces[pieces.length - 1] === "" ? "/" : "";
  return `/${out.join("/")}${trailing}`;
}
