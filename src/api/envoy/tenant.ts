/**
 * Finding the tenant of a request: a route override, then the configured sources in order (header,
 * context extension, unverified JWT claim, host), then the default.
 */
import { isCompactJws } from "../../authn/tokens/compact-jws.js";
import type { CompiledRules, TenantSource } from "./rules/model.js";
import type { Headers, HttpRequestView } from "./request.js";

/** The tenant: the route override, else the first source that yields one, else the default, else "". */
export function findTenant(
  headers: Headers,
  http: HttpRequestView,
  extensions: Readonly<Record<string, string>>,
  credential: string,
  rules: CompiledRules,
): string {
  const override = extensions[rules.tenantOverrideKey];
  if (override !== undefined && override !== "") return override;
  for (const source of rules.tenantSources) {
    const tenant = fromSource(source, headers, http, extensions, credential);
    if (tenant !== undefined && tenant !== "") return tenant;
  }
  return rules.defaultTenant ?? "";
}

/**
 * The context_extensions key the tenant findTenant returns came from (the route override or a
 * `contextExtension` source), or undefined when it came from the request or the default. Only for
 * explaining a refusal: it walks the sources again.
 */
export function tenantExtensionKey(
  headers: Headers,
  http: HttpRequestView,
  extensions: Readonly<Record<string, string>>,
  credential: string,
  rules: CompiledRules,
): string | undefined {
  const override = extensions[rules.tenantOverrideKey];
  if (override !== undefined && override !== "") return rules.tenantOverrideKey;
  for (const source of rules.tenantSources) {
    const tenant = fromSource(source, headers, http, extensions, credential);
    if (tenant !== undefined && tenant !== "") return source.kind === "context-extension" ? source.key : undefined;
  }
  return undefined;
}

function fromSource(
  source: TenantSource,
  headers: Headers,
  http: HttpRequestView,
  extensions: Readonly<Record<string, string>>,
  credential: string,
): string | undefined {
  switch (source.kind) {
    case "header":
      return headers[source.name]?.trim();
    case "context-extension":
      return extensions[source.key];
    case "jwt-claim":
      return unverifiedClaim(credential, source.claim);
    case "host":
      return tenantFromHost(http.host || headers[":authority"] || headers.host || "", source.prefix, source.suffix);
  }
}

/**
 * Reads a string claim from a JWT's payload WITHOUT verifying it. Used only to choose the tenant to
 * check in: the decider verifies the token and its membership in that tenant.
 */
function unverifiedClaim(credential: string, claim: string): string | undefined {
  if (!isCompactJws(credential)) return undefined;
  const first = credential.indexOf(".");
  const second = credential.lastIndexOf(".");
  try {
    const payload: unknown = JSON.parse(Buffer.from(credential.slice(first + 1, second), "base64url").toString("utf8"));
    if (payload === null || typeof payload !== "object") return undefined;
    const value = (payload as Record<string, unknown>)[claim];
    return typeof value === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}

/** The `{tenant}` part of `host` (port dropped, lower-cased) for the pattern prefix{tenant}suffix. */
function tenantFromHost(host: string, prefix: string, suffix: string): string | undefined {
  let end = host.length;
  const colon = host.lastIndexOf(":");
  if (colon >= 0 && host.indexOf("]") < colon) end = colon;
  const lower = host.slice(0, end).toLowerCase();
  if (lower.length <= prefix.length + suffix.length || !lower.startsWith(prefix) || !lower.endsWith(suffix)) return undefined;
  const tenant = lower.slice(prefix.length, lower.length - suffix.length);
  return tenant.includes(".") ? undefined : tenant;
}
