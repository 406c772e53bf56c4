/**
 * Finding the credential in a request (bearer token, API key header, session cookie) and what to
 * remove so that it does not reach upstream.
 */
import type { CompiledRules, CredentialSource } from "./rules/model.js";
import type { Headers } from "./request.js";

/** A credential found in the request, and how to keep it from reaching upstream. */
export interface FoundCredential {
  readonly value: string;
  readonly source: CredentialSource;
  /** The header that carried it. */
  readonly header: string;
  /** For cookies: the cookie header without the session cookie ("" when nothing else remains). */
  readonly remainingCookies: string;
}

/** The first credential found in the configured source order. */
export function findCredential(headers: Headers, rules: CompiledRules): FoundCredential | undefined {
  for (const source of rules.credentialSources) {
    if (source === "bearer") {
      const value = headers.authorization;
      if (value !== undefined && value.length > 7 && value.slice(0, 7).toLowerCase() === "bearer ") {
        return { value: value.slice(7).trim(), source, header: "authorization", remainingCookies: "" };
      }
    } else if (source === "api-key") {
      const value = headers[rules.apiKeyHeader];
      if (value !== undefined) return { value: value.trim(), source, header: rules.apiKeyHeader, remainingCookies: "" };
    } else {
      const found = findCookie(headers.cookie, rules.cookieName!);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/** Finds cookie `name` in a cookie header (pairs separated by ';', or ',' where Envoy joined repeats). */
function findCookie(header: string | undefined, name: string): FoundCredential | undefined {
  if (header === undefined) return undefined;
  let value: string | undefined;
  const others: string[] = [];
  for (const pair of header.split(/[;,]/)) {
    const trimmed = pair.trim();
    if (trimmed === "") continue;
    const eq = trimmed.indexOf("=");
    if (value === undefined && eq === name.length && trimmed.startsWith(name)) {
      value = trimmed.slice(eq + 1).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    } else {
      others.push(trimmed);
    }
  }
  return value === undefined ? undefined : { value, source: "cookie", header: "cookie", remainingCookies: others.join("; ") };
}
