/**
 * Finding the credential in a request (bearer token, API key header, session cookie) and what to
 * remove so that no credential Verdict recognises reaches upstream.
 */
import type { CompiledRules, CredentialSource } from "./rules/model.js";
import type { Headers } from "./request.js";

/** A credential found in the request. */
export interface FoundCredential {
  readonly value: string;
  readonly source: CredentialSource;
  /** The header that carried it. */
  readonly header: string;
}

/** The session cookies of a request's cookie header, and every other cookie, in order. */
export interface SessionCookies {
  /** Values of the cookies with the session cookie's name (quotes removed). */
  readonly values: readonly string[];
  /** The other `name=value` pairs, as sent. */
  readonly others: readonly string[];
}

/** What to take out of the request before it goes upstream. */
export interface UpstreamStrip {
  /** Headers to remove. */
  readonly remove: readonly string[];
  /** A replacement cookie header without the session cookies, when other cookies remain. */
  readonly cookie: string | undefined;
}

const NOTHING: UpstreamStrip = Object.freeze({ remove: Object.freeze([]), cookie: undefined });

/**
 * Splits the cookie header (pairs separated by ';', or ',' where Envoy joined repeated headers)
 * into the session cookies and the others; undefined when cookies are not a credential source of
 * `rules` or the request has no cookie header.
 */
export function sessionCookies(headers: Headers, rules: CompiledRules): SessionCookies | undefined {
  const header = headers.cookie;
  const name = rules.cookieName;
  if (header === undefined || name === undefined) return undefined;
  const values: string[] = [];
  const others: string[] = [];
  for (const pair of header.split(/[;,]/)) {
    const trimmed = pair.trim();
    if (trimmed === "") continue;
    const eq = trimmed.indexOf("=");
    if (eq === name.length && trimmed.startsWith(name)) {
      const value = trimmed.slice(eq + 1).trim();
      values.push(value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value);
    } else {
      others.push(trimmed);
    }
  }
  return { values, others };
}

/** The first credential found in the configured source order. */
export function findCredential(headers: Headers, rules: CompiledRules, cookies: SessionCookies | undefined): FoundCredential | undefined {
  for (const source of rules.credentialSources) {
    if (source === "bearer") {
      const value = headers.authorization;
      if (value !== undefined && value.length > 7 && value.slice(0, 7).toLowerCase() === "bearer ") {
        return { value: value.slice(7).trim(), source, header: "authorization" };
      }
    } else if (source === "api-key") {
      const value = headers[rules.apiKeyHeader];
      if (value !== undefined) return { value: value.trim(), source, header: rules.apiKeyHeader };
    } else if (cookies !== undefined && cookies.values.length > 0) {
      return { value: cookies.values[0], source, header: "cookie" };
    }
  }
  return undefined;
}

/**
 * The credentials to remove under `rules.stripUpstream`: with `all`, the authorization header, the
 * API key header and every session cookie present; with `used`, only `used`; with `none`, nothing.
 */
export function upstreamStrip(headers: Headers, rules: CompiledRules, cookies: SessionCookies | undefined, used: FoundCredential | undefined): UpstreamStrip {
  if (rules.stripUpstream === "none") return NOTHING;
  const all = rules.stripUpstream === "all";
  const remove: string[] = [];
  if (headers.authorization !== undefined && (all || used?.header === "authorization")) remove.push("authorization");
  if (headers[rules.apiKeyHeader] !== undefined && (all || used?.header === rules.apiKeyHeader)) remove.push(rules.apiKeyHeader);
  let cookie: string | undefined;
  if (cookies !== undefined && cookies.values.length > 0 && (all || used?.source === "cookie")) {
    if (cookies.others.length === 0) remove.push("cookie");
    else cookie = cookies.others.join("; ");
  }
  return remove.length === 0 && cookie === undefined ? NOTHING : { remove, cookie };
}
