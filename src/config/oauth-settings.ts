/**
 * The parts of the sign-in settings (declared in config.ts) that have a shape of their own:
 * VERDICT_OAUTH_PROVIDERS (a JSON array checked by one schema, client secrets read from a file or
 * a variable), the return-URL allow list and the CORS origins.
 */
import { readFileSync } from "node:fs";
import { inspect } from "node:util";
import * as v from "valibot";
import { ConfigError, type Env } from "./setting.js";

/**
 * A secret read from the configuration. It prints as "[redacted]" in logs, JSON and inspect, so
 * a configuration object can never leak it by being logged; reveal() gives the value.
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  /** The secret itself, for the one place that sends it. */
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return "[redacted]";
  }
  toJSON(): string {
    return "[redacted]";
  }
  [inspect.custom](): string {
    return "[redacted]";
  }
}

/** How a user is created at the first sign-in of an identity no user is linked to. */
export interface ProvisionSettings {
  /** Tenant ("*" for every tenant) and role bound to the new user. */
  readonly tenant: string;
  readonly role: string;
  /** When not empty, only verified emails in these domains (lower case) get an account. */
  readonly emailDomains: readonly string[];
}

/** One identity provider (an entry of VERDICT_OAUTH_PROVIDERS). */
export interface OAuthProviderSettings {
  /** Name in the URLs /oauth2/{id}/authorize and /oauth2/{id}/callback: a-z, 0-9, '-'. */
  readonly id: string;
  /** "oidc": discovery, ID token; "github": GitHub's OAuth apps and its /user API. */
  readonly kind: "oidc" | "github";
  /** OIDC: the issuer (discovery at {issuer}/.well-known/openid-configuration). GitHub: "". */
  readonly issuer: string;
  /** GitHub endpoints (defaults: github.com and api.github.com); "" for OIDC. */
  readonly authorizationUrl: string;
  readonly tokenUrl: string;
  readonly apiUrl: string;
  readonly clientId: string;
  /** From clientSecretFile or the variable named by clientSecretEnv. */
  readonly clientSecret: Secret;
  readonly scopes: readonly string[];
  /** The one ID token algorithm accepted (OIDC; default RS256); never "none" nor an HMAC. */
  readonly idTokenAlgorithm: string;
  /** Allowed return_to URLs for this provider; default VERDICT_OAUTH_RETURN_URLS. */
  readonly returnUrls: readonly string[];
  /**
   * Link a new identity to the existing user whose username is its email, when the provider says
   * the email is verified (default false: only an explicit link, made while signed in, joins them).
   */
  readonly linkVerifiedEmail: boolean;
  /** undefined: no account is created; an identity must be linked first. */
  readonly provision: ProvisionSettings | undefined;
}

const ID = /^[a-z0-9][a-z0-9-]{0,31}$/;
const TENANT = /^([a-z0-9][a-z0-9_-]{0,62}|\*)$/;
const ALLOWED_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"] as const;

const text = v.pipe(v.string(), v.nonEmpty("must be a non-empty string"));
const httpUrl = v.pipe(
  v.string(),
  v.check((s) => isAllowedEndpoint(s), "must be an https URL (http only on a loopback host)"),
);

const common = {
  id: v.pipe(v.string(), v.regex(ID, "must be 1 to 32 of a-z, 0-9, '-'")),
  clientId: text,
  clientSecretFile: v.optional(text),
  clientSecretEnv: v.optional(text),
  scopes: v.optional(v.array(text)),
  returnUrls: v.optional(v.array(v.string())),
  linkVerifiedEmail: v.optional(v.boolean(), false),
  provision: v.optional(
    v.strictObject({
      tenant: v.pipe(v.string(), v.regex(TENANT, "must be a tenant id or *")),
      role: text,
      emailDomains: v.optional(v.array(text), []),
    }),
  ),
};

const ProviderSchema = v.variant("kind", [
  v.strictObject({
    ...common,
    kind: v.literal("oidc"),
    issuer: httpUrl,
    idTokenAlgorithm: v.optional(v.picklist(ALLOWED_ALGS, `must be one of ${ALLOWED_ALGS.join(", ")}`), "RS256"),
  }),
  v.strictObject({
    ...common,
    kind: v.literal("github"),
    authorizationUrl: v.optional(httpUrl, "https://github.com/login/oauth/authorize"),
    tokenUrl: v.optional(httpUrl, "https://github.com/login/oauth/access_token"),
    apiUrl: v.optional(httpUrl, "https://api.github.com"),
  }),
]);

/** True for https URLs, and http URLs on a loopback host (development and tests). */
function isAllowedEndpoint(s: string): boolean {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return false;
  }
  const loopback = u.hostname === "127.0.0.1" || u.hostname === "[::1]" || u.hostname === "localhost";
  return u.protocol === "https:" || (u.protocol === "http:" && loopback);
}

function fail(message: string): never {
  throw new ConfigError(message);
}

/** Parses one allowed return URL (absolute http(s), no credentials, query or fragment). */
function returnUrl(value: string, where: string): string {
  let u: URL | undefined;
  try {
    u = new URL(value);
  } catch {
    fail(`${where}: ${JSON.stringify(value)} is not an absolute URL`);
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") fail(`${where}: ${JSON.stringify(value)} must be http or https`);
  if (u.username !== "" || u.password !== "" || u.search !== "" || u.hash !== "") {
    fail(`${where}: ${JSON.stringify(value)} must have no credentials, query or fragment`);
  }
  return u.href;
}

function list(value: string): string[] {
  return value.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** Parses a comma-separated list of allowed return URLs (the value of `name`). */
export function parseReturnUrls(name: string, value: string): readonly string[] {
  return Object.freeze(list(value).map((u, i) => returnUrl(u, `${name}[${i}]`)));
}

/** Parses a comma-separated list of origins (scheme://host[:port]). */
export function parseOrigins(name: string, value: string): readonly string[] {
  return Object.freeze(
    list(value).map((o) => {
      let u: URL | undefined;
      try {
        u = new URL(o);
      } catch {
        u = undefined;
      }
      if (!u || u.origin !== o.replace(/\/$/, "") || (u.protocol !== "https:" && u.protocol !== "http:")) {
        fail(`${name}: ${JSON.stringify(o)} is not an origin (scheme://host[:port])`);
      }
      return u.origin;
    }),
  );
}

function readSecret(entry: { clientSecretFile?: string; clientSecretEnv?: string }, env: Env, where: string): Secret {
  if ((entry.clientSecretFile === undefined) === (entry.clientSecretEnv === undefined)) {
    fail(`${where}: give exactly one of clientSecretFile and clientSecretEnv`);
  }
  let value: string | undefined;
  if (entry.clientSecretFile !== undefined) {
    try {
      value = readFileSync(entry.clientSecretFile, "utf8").trim();
    } catch {
      fail(`${where}.clientSecretFile: cannot read ${JSON.stringify(entry.clientSecretFile)}`);
    }
  } else {
    value = env[entry.clientSecretEnv!]?.trim();
  }
  if (!value) fail(`${where}: the client secret is empty`);
  return new Secret(value);
}

/**
 * Parses the JSON value of `name` (VERDICT_OAUTH_PROVIDERS) and reads each client secret from its
 * file or variable. A provider without returnUrls uses `defaultReturnUrls`; `publicUrl` (the
 * callbacks' base) must be set when there is a provider.
 */
export function parseOAuthProviders(name: string, value: string, env: Env, defaultReturnUrls: readonly string[], publicUrl: string): readonly OAuthProviderSettings[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    fail(`${name} must be a JSON array of providers`);
  }
  if (!Array.isArray(parsed)) fail(`${name} must be a JSON array of providers`);
  const seen = new Set<string>();
  const providers = parsed.map((entry: unknown, i): OAuthProviderSettings => {
    const where = `${name}[${i}]`;
    const result = v.safeParse(ProviderSchema, entry);
    if (!result.success) {
      const issue = result.issues[0];
      const path = v.getDotPath(issue);
      fail(`${where}${path ? `.${path}` : ""}: ${issue.message}`);
    }
    const e = result.output;
    if (seen.has(e.id)) fail(`${where}.id: provider ${JSON.stringify(e.id)} is listed twice`);
    seen.add(e.id);
    const own = (e.returnUrls ?? []).map((u, j) => returnUrl(u, `${where}.returnUrls[${j}]`));
    const github = e.kind === "github" ? e : undefined;
    if (e.kind === "oidc" && e.scopes !== undefined && !e.scopes.includes("openid")) fail(`${where}.scopes: an oidc provider's scopes must include "openid"`);
    return Object.freeze({
      id: e.id,
      kind: e.kind,
      issuer: e.kind === "oidc" ? e.issuer : "",
      authorizationUrl: github?.authorizationUrl ?? "",
      tokenUrl: github?.tokenUrl ?? "",
      apiUrl: github ? github.apiUrl.replace(/\/$/, "") : "",
      clientId: e.clientId,
      clientSecret: readSecret(e, env, where),
      scopes: Object.freeze(e.scopes ?? (e.kind === "oidc" ? ["openid", "email", "profile"] : ["read:user", "user:email"])),
      idTokenAlgorithm: e.kind === "oidc" ? e.idTokenAlgorithm : "",
      returnUrls: Object.freeze(own.length > 0 ? own : [...defaultReturnUrls]),
      linkVerifiedEmail: e.linkVerifiedEmail,
      provision: e.provision
        ? Object.freeze({ tenant: e.provision.tenant, role: e.provision.role, emailDomains: Object.freeze(e.provision.emailDomains.map((d) => d.toLowerCase())) })
        : undefined,
    });
  });
  if (providers.length > 0 && publicUrl === "") {
    fail(`VERDICT_PUBLIC_URL is required when ${name} is set (callbacks are {VERDICT_PUBLIC_URL}/oauth2/{id}/callback)`);
  }
  return Object.freeze(providers);
}
