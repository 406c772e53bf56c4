/**
 * One typed, frozen configuration built from the environment. Every setting and its default is
 * here; a bad value fails at start with a message naming the variable.
 */

import { parseJwtSecret, parseKeyEncryptionKey } from "../authn/tokens/signing-keys.js";

/** Thrown for an invalid setting; the message names the variable and what it expects. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** A host and port to listen on. */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** Verdict's configuration. */
export interface Config {
  readonly grpcAddr: ListenAddress;
  readonly httpAddr: ListenAddress;
  /** Embedded database directory (PGlite), used when databaseUrl is empty. */
  readonly dataDir: string;
  readonly databaseUrl: string;
  /**
   * Postgres schema holding Verdict's tables (VERDICT_DATABASE_SCHEMA; lower-case letters, digits
   * and _). Empty (the default): the server's search_path, normally "public". Several deployments
   * may share one database in separate schemas; they must then use separate Redis channels too.
   */
  readonly databaseSchema: string;
  readonly redisUrl: string;
  /**
   * Redis pub/sub channel carrying invalidations (VERDICT_REDIS_CHANNEL, default
   * "verdict:invalidations"). Every replica of one deployment must use the same channel.
   */
  readonly redisChannel: string;
  readonly logLevel: "debug" | "info" | "warn" | "error";
  readonly root: {
    readonly username: string;
    /** Empty: generate one at first start and print it once. */
    readonly password: string;
    readonly enabled: boolean;
    readonly disableAfterSetup: boolean;
  };
  readonly adminOverride: boolean;
  readonly adminRole: string;
  /** When true, Check callers must present their own credential holding `check:decisions`. */
  readonly checkRequireCaller: boolean;
  /** Answer allow instead of deny when Verdict fails internally (default: fail closed). */
  readonly failOpen: boolean;
  /** Largest request message accepted, in bytes. */
  readonly maxRequestBytes: number;
  readonly keyUse: { readonly flushIntervalMs: number; readonly maxPending: number };
  /**
   * How often each replica asks the store for a newer policy version (VERDICT_POLL_INTERVAL_MS,
   * default 1000). Bounds staleness when an invalidation message is lost or Redis is away.
   */
  readonly pollIntervalMs: number;
  /**
   * How long a Check with min_version may wait for this replica to catch up
   * (VERDICT_MIN_VERSION_WAIT_MS, default 100) before answering with reason STALE.
   */
  readonly minVersionWaitMs: number;
  /** argon2id cost, and how many password operations may run at once (the rest queue). */
  readonly argon2: { readonly memoryCost: number; readonly timeCost: number; readonly parallelism: number; readonly maxConcurrent: number };
  readonly shutdownGraceMs: number;
  /** The decision audit trail (JSON lines on stdout): every denial, a sample of allows. */
  readonly audit: {
    readonly enabled: boolean;
    readonly allowSampleRate: number;
    readonly flushIntervalMs: number;
    readonly maxPending: number;
  };
  /** The Envoy ext_authz adapter (envoy.service.auth.v3.Authorization on the gRPC port). */
  readonly extAuthz: {
    /** Route rules file (YAML or JSON); empty: the built-in rules (conventional actions, see docs/envoy.md). */
    readonly rulesPath: string;
    /** How often the rules file is stat-checked for changes besides fs.watch; 0 turns polling off. */
    readonly reloadIntervalMs: number;
    /** How long one ext_authz Check may wait for a decision before failing closed (Envoy waits 200 ms by default). */
    readonly timeoutMs: number;
  };
  readonly tokens: TokenSettings;
}

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

/** Tokens: Verdict's own (Login / Refresh / Logout), their keys, and external issuers. */
export interface TokenSettings {
  /** The `iss` of Verdict's tokens (VERDICT_JWT_ISSUER, default "verdict"). */
  readonly issuer: string;
  /** The `aud` of Verdict's tokens (VERDICT_JWT_AUDIENCE, default "verdict"). */
  readonly audience: string;
  /** Access-token lifetime (VERDICT_ACCESS_TOKEN_TTL_SECONDS, default 3600). */
  readonly accessTtlMs: number;
  /** Refresh-token lifetime (VERDICT_REFRESH_TOKEN_TTL_SECONDS, default 30 days). */
  readonly refreshTtlMs: number;
  /** Algorithm of new signing keys (VERDICT_JWT_SIGNING_ALG: EdDSA (default) or ES256). */
  readonly signingAlg: "EdDSA" | "ES256";
  /** VERDICT_JWT_SECRET: when set (at least 32 bytes), tokens are HS256 with this secret and no keys are stored. */
  readonly jwtSecret: string;
  /** VERDICT_KEY_ENCRYPTION_KEY: 32 bytes (hex or base64) sealing private keys at rest; empty: stored in plain PEM. */
  readonly keyEncryptionKey: string;
  /** Clock skew tolerated on exp / nbf / iat (VERDICT_JWT_LEEWAY_SECONDS, default 0). */
  readonly leewayMs: number;
  /** Claim holding the tenant (VERDICT_JWT_TENANT_CLAIM, default "tenant_id"). */
  readonly tenantClaim: string;
  /** Verified-claims cache entries (VERDICT_TOKEN_CACHE_SIZE, default 100000; 0 turns it off). */
  readonly claimsCacheSize: number;
  /** VERDICT_OIDC_ISSUERS: a JSON array of issuers (see docs/tokens.md). */
  readonly oidcIssuers: readonly OidcIssuerSettings[];
  /** Failed logins allowed per username and peer address in one window (VERDICT_LOGIN_MAX_ATTEMPTS, default 5). */
  readonly loginMaxAttempts: number;
  /** The login rate-limit window (VERDICT_LOGIN_WINDOW_SECONDS, default 300). */
  readonly loginWindowMs: number;
}

type Env = Record<string, string | undefined>;

function str(env: Env, name: string, fallback: string): string {
  const v = env[name];
  return v === undefined || v === "" ? fallback : v;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const v = env[name];
  if (v === undefined || v === "") return fallback;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new ConfigError(`${name} must be true or false, got ${JSON.stringify(v)}`);
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const v = env[name];
  if (v === undefined || v === "") return fallback;
  if (!/^\d+$/.test(v)) throw new ConfigError(`${name} must be a whole number, got ${JSON.stringify(v)}`);
  const n = Number(v);
  if (n < min || n > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

function fraction(env: Env, name: string, fallback: number): number {
  const v = env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!/^\d*\.?\d+$/.test(v) || n > 1) throw new ConfigError(`${name} must be a number from 0 to 1, got ${JSON.stringify(v)}`);
  return n;
}

function address(env: Env, name: string, fallback: string): ListenAddress {
  const v = str(env, name, fallback);
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]*):(\d{1,5})$/.exec(v);
  if (!m || Number(m[2]) > 65535) throw new ConfigError(`${name} must be host:port (for example 0.0.0.0:8080), got ${JSON.stringify(v)}`);
  const host = m[1] === "" ? "0.0.0.0" : m[1].replace(/^\[|\]$/g, "");
  return { host, port: Number(m[2]) };
}

function oneOf<T extends string>(env: Env, name: string, fallback: T, values: readonly T[]): T {
  const v = str(env, name, fallback);
  if (!(values as readonly string[]).includes(v)) throw new ConfigError(`${name} must be one of ${values.join(", ")}, got ${JSON.stringify(v)}`);
  return v as T;
}

function url(env: Env, name: string, schemes: readonly string[]): string {
  const v = str(env, name, "");
  if (v === "") return "";
  let parsed: URL;
  try {
    parsed = new URL(v);
  } catch {
    throw new ConfigError(`${name} is not a valid URL`);
  }
  if (!schemes.includes(parsed.protocol)) throw new ConfigError(`${name} must start with ${schemes.join(" or ")}`);
  return v;
}

function schemaName(env: Env, name: string): string {
  const v = str(env, name, "");
  if (v !== "" && !/^[a-z_][a-z0-9_]{0,62}$/.test(v)) {
    throw new ConfigError(`${name} must be 1 to 63 lower-case letters, digits or _ (not starting with a digit), got ${JSON.stringify(v)}`);
  }
  return v;
}

function channelName(env: Env, name: string, fallback: string): string {
  const v = str(env, name, fallback);
  if (!/^[\x21-\x7e]{1,256}$/.test(v)) throw new ConfigError(`${name} must be 1 to 256 printable characters without spaces, got ${JSON.stringify(v)}`);
  return v;
}

function secret(env: Env, name: string, parse: (value: string) => Buffer): string {
  const v = str(env, name, "");
  if (v === "") return "";
  try {
    parse(v);
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  return v;
}

function oidcIssuers(env: Env, name: string, defaultTenantClaim: string): OidcIssuerSettings[] {
  const v = str(env, name, "");
  if (v === "") return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(v);
  } catch {
    throw new ConfigError(`${name} must be a JSON array of issuers`);
  }
  if (!Array.isArray(parsed)) throw new ConfigError(`${name} must be a JSON array of issuers`);
  return parsed.map((entry: unknown, i) => {
    const where = `${name}[${i}]`;
    if (typeof entry !== "object" || entry === null) throw new ConfigError(`${where} must be an object`);
    const e = entry as Record<string, unknown>;
    const text = (field: string, fallback?: string): string => {
      const x = e[field] ?? fallback;
      if (typeof x !== "string" || x === "") throw new ConfigError(`${where}.${field} must be a non-empty string`);
      return x;
    };
    const seconds = (field: string, fallback: number): number => {
      const x = e[field] ?? fallback;
      if (typeof x !== "number" || !Number.isInteger(x) || x < 1 || x > 86_400) throw new ConfigError(`${where}.${field} must be a whole number of seconds from 1 to 86400`);
      return x * 1000;
    };
    const audience = typeof e.audience === "string" ? [e.audience] : e.audience;
    if (!Array.isArray(audience) || audience.length === 0 || !audience.every((a) => typeof a === "string" && a !== "")) {
      throw new ConfigError(`${where}.audience must be a non-empty string or array of strings`);
    }
    const algorithms = e.algorithms ?? ["RS256"];
    if (!Array.isArray(algorithms) || algorithms.length === 0 || !algorithms.every((a) => a === "RS256" || a === "ES256" || a === "EdDSA")) {
      throw new ConfigError(`${where}.algorithms must be a non-empty array of RS256, ES256, EdDSA`);
    }
    let jwksUrl: URL;
    try {
      jwksUrl = new URL(text("jwksUrl"));
    } catch {
      throw new ConfigError(`${where}.jwksUrl is not a valid URL`);
    }
    const loopback = ["127.0.0.1", "[::1]", "localhost"].includes(jwksUrl.hostname);
    if (jwksUrl.protocol !== "https:" && !(jwksUrl.protocol === "http:" && loopback)) throw new ConfigError(`${where}.jwksUrl must be https (http only on a loopback host)`);
    const createUsers = e.createUsers ?? false;
    if (typeof createUsers !== "boolean") throw new ConfigError(`${where}.createUsers must be true or false`);
    const defaultTenant = createUsers ? text("defaultTenant") : "";
    const defaultRole = createUsers ? text("defaultRole") : "";
    return Object.freeze({
      issuer: text("issuer"),
      audience: Object.freeze([...(audience as string[])]),
      jwksUrl: jwksUrl.href,
      algorithms: Object.freeze([...(algorithms as OidcIssuerSettings["algorithms"])]),
      cacheTtlMs: seconds("cacheTtlSeconds", 600),
      cooldownMs: seconds("cooldownSeconds", 30),
      tenantClaim: text("tenantClaim", defaultTenantClaim),
      createUsers,
      defaultTenant,
      defaultRole,
    });
  });
}

/** Builds the configuration from `env` (process.env by default) or throws ConfigError. */
export function loadConfig(env: Env = process.env): Config {
  const config: Config = {
    grpcAddr: address(env, "VERDICT_GRPC_ADDR", "0.0.0.0:50051"),
    httpAddr: address(env, "VERDICT_HTTP_ADDR", "0.0.0.0:8080"),
    dataDir: str(env, "VERDICT_DATA_DIR", "./data"),
    databaseUrl: url(env, "DATABASE_URL", ["postgres:", "postgresql:"]),
    databaseSchema: schemaName(env, "VERDICT_DATABASE_SCHEMA"),
    redisUrl: url(env, "REDIS_URL", ["redis:", "rediss:"]),
    redisChannel: channelName(env, "VERDICT_REDIS_CHANNEL", "verdict:invalidations"),
    logLevel: oneOf(env, "VERDICT_LOG_LEVEL", "info", ["debug", "info", "warn", "error"] as const),
    root: {
      username: str(env, "VERDICT_ROOT_USERNAME", "root"),
      password: str(env, "VERDICT_ROOT_PASSWORD", ""),
      enabled: bool(env, "VERDICT_ROOT_ENABLED", true),
      disableAfterSetup: bool(env, "VERDICT_DISABLE_ROOT_AFTER_SETUP", false),
    },
    adminOverride: bool(env, "VERDICT_ADMIN_OVERRIDE", false),
    adminRole: str(env, "VERDICT_ADMIN_ROLE", "ADMIN"),
    checkRequireCaller: bool(env, "VERDICT_CHECK_REQUIRE_CALLER", false),
    failOpen: bool(env, "VERDICT_FAIL_OPEN", false),
    maxRequestBytes: int(env, "VERDICT_MAX_REQUEST_BYTES", 65536, 1024, 16 * 1024 * 1024),
    keyUse: {
      flushIntervalMs: int(env, "VERDICT_KEY_USE_FLUSH_MS", 5000, 10, 3_600_000),
      maxPending: int(env, "VERDICT_KEY_USE_MAX_PENDING", 100_000, 1, 10_000_000),
    },
    pollIntervalMs: int(env, "VERDICT_POLL_INTERVAL_MS", 1000, 10, 3_600_000),
    minVersionWaitMs: int(env, "VERDICT_MIN_VERSION_WAIT_MS", 100, 0, 60_000),
    argon2: {
      memoryCost: int(env, "VERDICT_ARGON2_MEMORY_KIB", 65536, 1024, 4 * 1024 * 1024),
      timeCost: int(env, "VERDICT_ARGON2_TIME_COST", 3, 1, 100),
      parallelism: int(env, "VERDICT_ARGON2_PARALLELISM", 4, 1, 64),
      maxConcurrent: int(env, "VERDICT_ARGON2_MAX_CONCURRENT", 1, 1, 64),
    },
    shutdownGraceMs: int(env, "VERDICT_SHUTDOWN_GRACE_MS", 10_000, 0, 600_000),
    audit: {
      enabled: bool(env, "VERDICT_AUDIT_DECISIONS", true),
      allowSampleRate: fraction(env, "VERDICT_AUDIT_ALLOW_SAMPLE_RATE", 0.01),
      flushIntervalMs: int(env, "VERDICT_AUDIT_FLUSH_MS", 1000, 10, 3_600_000),
      maxPending: int(env, "VERDICT_AUDIT_MAX_PENDING", 10_000, 1, 10_000_000),
    },
    extAuthz: {
      rulesPath: str(env, "VERDICT_EXT_AUTHZ_RULES", ""),
      reloadIntervalMs: int(env, "VERDICT_EXT_AUTHZ_RELOAD_MS", 5000, 0, 3_600_000),
      timeoutMs: int(env, "VERDICT_EXT_AUTHZ_TIMEOUT_MS", 150, 1, 60_000),
    },
    tokens: {
      issuer: str(env, "VERDICT_JWT_ISSUER", "verdict"),
      audience: str(env, "VERDICT_JWT_AUDIENCE", "verdict"),
      accessTtlMs: int(env, "VERDICT_ACCESS_TOKEN_TTL_SECONDS", 3600, 1, 86_400) * 1000,
      refreshTtlMs: int(env, "VERDICT_REFRESH_TOKEN_TTL_SECONDS", 30 * 86_400, 60, 365 * 86_400) * 1000,
      signingAlg: oneOf(env, "VERDICT_JWT_SIGNING_ALG", "EdDSA", ["EdDSA", "ES256"] as const),
      jwtSecret: secret(env, "VERDICT_JWT_SECRET", parseJwtSecret),
      keyEncryptionKey: secret(env, "VERDICT_KEY_ENCRYPTION_KEY", parseKeyEncryptionKey),
      leewayMs: int(env, "VERDICT_JWT_LEEWAY_SECONDS", 0, 0, 600) * 1000,
      tenantClaim: str(env, "VERDICT_JWT_TENANT_CLAIM", "tenant_id"),
      claimsCacheSize: int(env, "VERDICT_TOKEN_CACHE_SIZE", 100_000, 0, 10_000_000),
      oidcIssuers: oidcIssuers(env, "VERDICT_OIDC_ISSUERS", str(env, "VERDICT_JWT_TENANT_CLAIM", "tenant_id")),
      loginMaxAttempts: int(env, "VERDICT_LOGIN_MAX_ATTEMPTS", 5, 1, 10_000),
      loginWindowMs: int(env, "VERDICT_LOGIN_WINDOW_SECONDS", 300, 1, 86_400) * 1000,
    },
  };
  if (config.root.password !== "" && config.root.password.length < 12) {
    throw new ConfigError("VERDICT_ROOT_PASSWORD must be at least 12 characters");
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$/.test(config.root.username)) {
    throw new ConfigError("VERDICT_ROOT_USERNAME must be letters, digits, '_', '.', '@', '-' (at most 128)");
  }
  return Object.freeze(config);
}
