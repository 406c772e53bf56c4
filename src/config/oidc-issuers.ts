/**
 * VERDICT_OIDC_ISSUERS: a JSON array of external issuers whose tokens Check accepts, checked
 * against one schema; a bad entry fails with its place and field ("VERDICT_OIDC_ISSUERS[0].jwksUrl").
 */

import * as v from "valibot";
import { ConfigError } from "./setting.js";

/** An external OIDC issuer whose tokens Check accepts (one entry of VERDICT_OIDC_ISSUERS). */
export interface OidcIssuerSettings {
  readonly issuer: string;
  readonly audience: readonly string[];
  /** https, or http on a loopback host. */
  readonly jwksUrl: string;
  /** Default ["RS256"]; RS256, ES256 and EdDSA only. */
  readonly algorithms: readonly ("RS256" | "ES256" | "EdDSA")[];
  /** How long a fetched key set is fresh (cacheTtlSeconds, default 600). */
  readonly cacheTtlMs: number;
  /** Least time between two refetches for an unknown kid (cooldownSeconds, default 30). */
  readonly cooldownMs: number;
  /** Claim holding the tenant (tenantClaim, default VERDICT_JWT_TENANT_CLAIM). */
  readonly tenantClaim: string;
  /** Create a Verdict user on first sight of a subject (createUsers, default false). */
  readonly createUsers: boolean;
  /** Tenant ("*" for every tenant) and role bound to a user created on first sight. */
  readonly defaultTenant: string;
  readonly defaultRole: string;
}

const LOOPBACK = ["127.0.0.1", "[::1]", "localhost"];
const NON_EMPTY = "must be a non-empty string";
const nonEmpty = v.pipe(v.string(NON_EMPTY), v.nonEmpty(NON_EMPTY));
const SECONDS = "must be a whole number of seconds from 1 to 86400";
const seconds = (fallback: number) =>
  v.nullish(v.pipe(v.number(SECONDS), v.integer(SECONDS), v.minValue(1, SECONDS), v.maxValue(86_400, SECONDS), v.transform((s) => s * 1000)), fallback);
const ALGORITHMS = "must be a non-empty array of RS256, ES256, EdDSA";
const AUDIENCE = "must be a non-empty string or array of strings";

const entry = v.object(
  {
    issuer: nonEmpty,
    audience: v.union([v.pipe(nonEmpty, v.transform((a) => [a])), v.pipe(v.array(nonEmpty, AUDIENCE), v.minLength(1, AUDIENCE))], AUDIENCE),
    jwksUrl: v.pipe(
      nonEmpty,
      v.url("is not a valid URL"),
      v.transform((u) => new URL(u)),
      v.check((u) => u.protocol === "https:" || (u.protocol === "http:" && LOOPBACK.includes(u.hostname)), "must be https (http only on a loopback host)"),
      v.transform((u) => u.href),
    ),
    algorithms: v.nullish(v.pipe(v.array(v.picklist(["RS256", "ES256", "EdDSA"], "must be RS256, ES256 or EdDSA"), ALGORITHMS), v.minLength(1, ALGORITHMS)), ["RS256" as const]),
    cacheTtlSeconds: seconds(600),
    cooldownSeconds: seconds(30),
    tenantClaim: v.nullish(nonEmpty),
    createUsers: v.nullish(v.boolean("must be true or false"), false),
    defaultTenant: v.nullish(nonEmpty),
    defaultRole: v.nullish(nonEmpty),
  },
  // A missing key is reported at the key; a non-object entry at the entry.
  (issue) => (issue.path ? "is required" : "must be an object"),
);

const issuers = v.array(entry, "must be a JSON array of issuers");

/** Where an issue is, as "NAME[0].field". */
function place(name: string, issue: v.BaseIssue<unknown>): string {
  return (issue.path ?? []).reduce((at, item) => (typeof item.key === "number" ? `${at}[${item.key}]` : `${at}.${String(item.key)}`), name);
}

/** Parses the JSON value of `name`; an issuer without tenantClaim uses `defaultTenantClaim`. */
export function parseOidcIssuers(name: string, value: string, defaultTenantClaim: string): readonly OidcIssuerSettings[] {
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    throw new ConfigError(`${name} must be a JSON array of issuers`);
  }
  const result = v.safeParse(issuers, json);
  if (!result.success) throw new ConfigError(`${place(name, result.issues[0])} ${result.issues[0].message}`);
  return Object.freeze(
    result.output.map((e, i) => {
      const needed = (field: "defaultTenant" | "defaultRole"): string => {
        if (!e.createUsers) return "";
        if (e[field] == null) throw new ConfigError(`${name}[${i}].${field} ${NON_EMPTY} when createUsers is true`);
        return e[field];
      };
      return Object.freeze({
        issuer: e.issuer,
        audience: Object.freeze(e.audience),
        jwksUrl: e.jwksUrl,
        algorithms: Object.freeze(e.algorithms),
        cacheTtlMs: e.cacheTtlSeconds,
        cooldownMs: e.cooldownSeconds,
        tenantClaim: e.tenantClaim ?? defaultTenantClaim,
        createUsers: e.createUsers,
        defaultTenant: needed("defaultTenant"),
        defaultRole: needed("defaultRole"),
      });
    }),
  );
}
