/**
 * VERDICT_CORS_ORIGINS: the origins whose pages may call the HTTP API, exact (scheme://host[:port]),
 * or `*` for any origin, which is refused together with VERDICT_CORS_ALLOW_CREDENTIALS.
 */
import { parseOrigins } from "./oauth-settings.js";
import { ConfigError } from "./setting.js";

/** Any origin (answered `Access-Control-Allow-Origin: *`). */
export const ANY_ORIGIN = "*";

/** Parses the origins (the value of `name`); `*` must stand alone and never with credentials. */
export function parseCorsOrigins(name: string, value: string, allowCredentials: boolean): readonly string[] {
  const items = value.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const pattern = items.find((o) => o !== ANY_ORIGIN && o.includes("*"));
  if (pattern !== undefined) throw new ConfigError(`${name}: ${JSON.stringify(pattern)} is not an origin: origins are exact, without wildcards`);
  if (!items.includes(ANY_ORIGIN)) return parseOrigins(name, value);
  if (items.length > 1) throw new ConfigError(`${name}: "*" (any origin) must stand alone, not beside other origins`);
  if (allowCredentials) {
    throw new ConfigError(`${name}: "*" (any origin) cannot be used with VERDICT_CORS_ALLOW_CREDENTIALS=true; list the exact origins`);
  }
  return Object.freeze([ANY_ORIGIN]);
}
