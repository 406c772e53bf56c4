/**
 * Every setting of Verdict, declared once: its environment variable, its place in the Config, its
 * default, what it allows and what it does. The Config type, loadConfig and the README's settings
 * tables (test/unit/config-readme.test.ts, `npm run docs:config`) all come from `settings` below.
 *
 * To add a setting: add one entry where it belongs in `settings` (the field name is its name in
 * the Config), then run `npm run docs:config` to put it into the README.
 */

import { parseCorsOrigins } from "./cors-settings.js";
import { parseOAuthProviders, parseReturnUrls } from "./oauth-settings.js";
import { parseJwtSecret, parseKeyEncryptionKey } from "./secrets.js";
import { type Cidr, parseCidrList } from "./cidr-list.js";
import { parseOidcIssuers } from "./oidc-issuers.js";
import { PRESETS, PRESET_NAMES, type PresetName } from "./presets.js";
import { DEFAULT_IPV6_LIMIT_PREFIX } from "../core/address-bucket.js";
import { rateLimitSpecProblem } from "../core/rate-limit.js";
import { ConfigError, address, bool, custom, fraction, int, oneOf, readSettings, secret, seconds, text, url, type Env, type Resolved } from "./setting.js";

export { ConfigError, type ListenAddress } from "./setting.js";
export type { OidcIssuerSettings } from "./oidc-issuers.js";
export type { OAuthProviderSettings, ProvisionSettings } from "./oauth-settings.js";
export type { Cidr } from "./cidr-list.js";

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_SECONDS = 86_400;

const publicUrl = text({
  env: "VERDICT_PUBLIC_URL",
  default: "",
  shown: "(unset; required with providers)",
  pattern: /^https?:\/\/[^\s?#]+$/,
  rule: "an http(s) URL without query or fragment",
  doc: "how browsers reach the HTTP port; callbacks are `{VERDICT_PUBLIC_URL}/oauth2/{id}/callback`, the sign-in cookies are scoped to its path, and its origin's pages may refresh and sign out the browser's session",
});
const returnUrls = custom({
  env: "VERDICT_OAUTH_RETURN_URLS",
  default: Object.freeze([] as string[]),
  shown: "(none)",
  rule: "comma-separated absolute URLs without query",
  parse: (value: string) => parseReturnUrls("VERDICT_OAUTH_RETURN_URLS", value),
  doc: "URL prefixes `return_to` may name (scheme, host and port exact; path prefix); a provider's own `returnUrls` replace them",
});

const corsCredentials = bool({
  env: "VERDICT_CORS_ALLOW_CREDENTIALS",
  default: false,
  doc: "let those pages send cookies (the session cookie) and read the answers (`Access-Control-Allow-Credentials: true`), and refresh and sign out the browser's session (`POST /oauth2/refresh`, `/oauth2/logout`)",
});

const jwtTenantClaim = text({ env: "VERDICT_JWT_TENANT_CLAIM", default: "tenant_id", doc: "claim naming the token's tenant" });

/** VERDICT_WORKERS: `auto` or a count; more than one worker needs Postgres (PGlite is one process's). */
function parseWorkers(value: string, env: Env): number | "auto" {
  if (value === "auto") return "auto";
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1 && n <= 256)) throw new ConfigError(`VERDICT_WORKERS must be "auto" or a whole number from 1 to 256, got ${JSON.stringify(value)}`);
  if (n > 1 && !env.DATABASE_URL) {
    throw new ConfigError(
      `VERDICT_WORKERS=${n} needs DATABASE_URL: the embedded database (PGlite) belongs to one process, so several workers share a Postgres`,
    );
  }
  return n;
}

/** The declaration: one entry per setting, in the order of the README tables. */
export const settings = {
  preset: custom<PresetName | "">({
    env: "VERDICT_PRESET",
    default: "",
    shown: "(none)",
    rule: PRESET_NAMES.map((n) => `\`${n}\``).join(", "),
    parse: (value: string) => {
      if (!(PRESET_NAMES as readonly string[]).includes(value)) throw new ConfigError(`VERDICT_PRESET must be one of ${PRESET_NAMES.join(", ")}, got ${JSON.stringify(value)}`);
      return value as PresetName;
    },
    doc: "a bundle of defaults (see [Presets](#presets)); variables set explicitly override it",
  }),
  grpcAddr: address({ env: "VERDICT_GRPC_ADDR", default: "0.0.0.0:50051", doc: "gRPC listen address (Check, CheckBatch, Admin, health, Envoy ext_authz)" }),
  grpcFastLane: bool({
    env: "VERDICT_GRPC_FAST_LANE",
    default: true,
    doc: "answer Check, CheckBatch, ext_authz Check and health Check on the gRPC port straight from the HTTP/2 stream instead of through grpc-js's per-call machinery (same answers, about a third less CPU per call; `false` sends every call through grpc-js)",
  }),
  grpcLimits: {
    maxConcurrentStreams: int({
      env: "VERDICT_GRPC_MAX_CONCURRENT_STREAMS",
      default: 100,
      min: 1,
      max: 100_000,
      doc: "calls one connection to the gRPC port may have open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS); more wait in the client",
    }),
    maxConnections: int({
      env: "VERDICT_GRPC_MAX_CONNECTIONS",
      default: 1000,
      min: 1,
      max: 1_000_000,
      doc: "connections the gRPC port holds at once; beyond that new ones are closed at once (counted in `verdict_grpc_connections_refused_total`)",
    }),
    requestTimeoutMs: int({
      env: "VERDICT_GRPC_REQUEST_TIMEOUT_MS",
      default: 5000,
      min: 100,
      max: 10 * MINUTE_MS,
      doc: "a call whose request message has not fully arrived after this long (up to twice this) is answered `DEADLINE_EXCEEDED` and its stream reset",
    }),
  },
  httpAddr: address({ env: "VERDICT_HTTP_ADDR", default: "0.0.0.0:8080", doc: "HTTP listen address (Connect JSON, `/metrics`, `/healthz`, `/readyz`)" }),
  workers: custom<number | "auto">({
    env: "VERDICT_WORKERS",
    default: 1,
    shown: "1",
    rule: "`auto` or 1 to 256",
    parse: (value: string, env: Env) => parseWorkers(value, env),
    doc: "processes serving the same ports (node:cluster, one policy cache each); `auto`: the CPUs the process may use (the container's CPU quota, then the cores); more than 1 needs `DATABASE_URL` (see [Every core](#every-core-workers))",
  }),
  workerGc: oneOf({
    env: "VERDICT_WORKER_GC",
    default: "auto",
    values: ["auto", "single-threaded", "parallel"],
    doc: "with `VERDICT_WORKERS` above 1, how each worker collects garbage: `single-threaded` runs V8's collector on the worker's own thread only, `parallel` adds V8's helper threads (parallel scavenges, concurrent marking); `auto`: single-threaded when there are at least as many workers as CPUs the process may use, where the helpers would only take turns with the other workers (see [Every core](#every-core-workers))",
  }),
  trustedProxies: custom({
    env: "VERDICT_TRUSTED_PROXIES",
    default: Object.freeze([]) as readonly Cidr[],
    shown: "(none)",
    rule: "addresses or CIDR ranges, comma-separated",
    parse: (value: string) => parseCidrList("VERDICT_TRUSTED_PROXIES", value),
    doc: "proxies (Envoy, a load balancer) whose `X-Forwarded-For` names the client address that the login, refresh-token and sign-in limits count; from any other peer the header is ignored",
  }),
  ipv6LimitPrefix: int({
    env: "VERDICT_IPV6_LIMIT_PREFIX",
    default: DEFAULT_IPV6_LIMIT_PREFIX,
    min: 48,
    max: 128,
    doc: "the per-address limits (failed logins, failed refresh tokens and sign-in callbacks, sign-ins started, anonymous requests to rate-limited exempt routes) count an IPv6 client by this many leading bits of its address, since one subscriber normally holds a whole /64 (often a /56 or /48); 128: each address alone. IPv4 clients, and IPv4-mapped IPv6 addresses, count by their IPv4 address",
  }),
  heapGrowingPercent: int({
    env: "VERDICT_HEAP_GROWING_PERCENT",
    default: 50,
    min: 0,
    max: 400,
    doc: "the JavaScript heap's old generation grows by at most this percentage of what survived the last full garbage collection before the next one (V8 `--heap-growing-percent`): smaller makes each collection's pause shorter and more frequent (Check's worst-case latency), at a few percent more CPU per call; `0` leaves V8's own heuristic",
  }),
  dataDir: text({ env: "VERDICT_DATA_DIR", default: "./data", rule: "a directory", doc: "embedded database directory (PGlite), used when `DATABASE_URL` is unset; kept `0700` (a wider one is tightened, one of another user refused)" }),
  databaseUrl: url({ env: "DATABASE_URL", schemes: ["postgres:", "postgresql:"], doc: "use this Postgres instead of the embedded database" }),
  databaseSchema: text({
    env: "VERDICT_DATABASE_SCHEMA",
    default: "",
    shown: "(search_path)",
    pattern: /^[a-z_][a-z0-9_]{0,62}$/,
    rule: "1 to 63 lower-case letters, digits or _ (not starting with a digit)",
    doc: "Postgres schema holding Verdict's tables; unset: the server's search_path, normally `public`. Deployments sharing one database in separate schemas need separate Redis channels too",
  }),
  redisUrl: url({ env: "REDIS_URL", schemes: ["redis:", "rediss:"], doc: "share invalidations between replicas through Redis pub/sub" }),
  redisChannel: text({
    env: "VERDICT_REDIS_CHANNEL",
    default: "verdict:invalidations",
    pattern: /^[\x21-\x7e]{1,256}$/,
    rule: "1 to 256 printable characters without spaces",
    doc: "Redis pub/sub channel carrying invalidations; every replica of one deployment uses the same",
  }),
  logLevel: oneOf({ env: "VERDICT_LOG_LEVEL", default: "info", values: ["debug", "info", "warn", "error"], doc: "log level (JSON lines on stdout)" }),
  root: {
    username: text({
      env: "VERDICT_ROOT_USERNAME",
      default: "root",
      pattern: /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$/,
      rule: "letters, digits, '_', '.', '@', '-' (at most 128, starting with a letter or digit)",
      doc: "the root user created at first start",
    }),
    password: text({
      env: "VERDICT_ROOT_PASSWORD",
      default: "",
      shown: "(generated)",
      pattern: /^[\s\S]{12,}$/,
      rule: "at least 12 characters",
      sensitive: true,
      doc: "root's password at first start; unset: a random one is printed once",
    }),
    enabled: bool({ env: "VERDICT_ROOT_ENABLED", default: true, doc: "`false` disables root at start" }),
    disableAfterSetup: bool({ env: "VERDICT_DISABLE_ROOT_AFTER_SETUP", default: false, doc: "disable root once a user holds `ADMIN` in every tenant" }),
  },
  adminOverride: bool({ env: "VERDICT_ADMIN_OVERRIDE", default: false, doc: "let holders of `VERDICT_ADMIN_ROLE` act in tenants where they have no binding" }),
  adminRole: text({ env: "VERDICT_ADMIN_ROLE", default: "ADMIN", rule: "a role name", doc: "the role admin override looks for" }),
  checkRequireCaller: bool({
    env: "VERDICT_CHECK_REQUIRE_CALLER",
    default: false,
    doc: "require Check callers to present their own credential (`authorization` / `x-api-key` metadata) holding `check:decisions` in the tenant",
  }),
  failOpen: bool({ env: "VERDICT_FAIL_OPEN", default: false, doc: "answer allow (reason `INTERNAL_ERROR`) instead of deny when Verdict cannot decide" }),
  maxRequestBytes: int({ env: "VERDICT_MAX_REQUEST_BYTES", default: 65_536, min: 1024, max: 16 * 1024 * 1024, doc: "largest request message accepted, in bytes (larger: `RESOURCE_EXHAUSTED`)" }),
  keyUse: {
    flushIntervalMs: int({ env: "VERDICT_KEY_USE_FLUSH_MS", default: 5000, min: 10, max: HOUR_MS, doc: "how often API key last-use times are written (in statements of at most 2000 keys, one after the other, so that many keys used in one interval never hold Check for long)" }),
    maxPending: int({ env: "VERDICT_KEY_USE_MAX_PENDING", default: 100_000, min: 1, max: 10_000_000, doc: "most keys waiting to be written; beyond that records are dropped and counted" }),
  },
  pollIntervalMs: int({
    env: "VERDICT_POLL_INTERVAL_MS",
    default: 1000,
    min: 10,
    max: HOUR_MS,
    doc: "how often a replica asks the store for a newer policy version; bounds staleness when an invalidation is lost or Redis is away",
  }),
  minVersionWaitMs: int({
    env: "VERDICT_MIN_VERSION_WAIT_MS",
    default: 100,
    min: 0,
    max: MINUTE_MS,
    doc: "how long a Check with `min_version` may wait for this replica to catch up before answering `STALE`",
  }),
  argon2: {
    memoryCost: int({ env: "VERDICT_ARGON2_MEMORY_KIB", default: 65_536, min: 1024, max: 4 * 1024 * 1024, doc: "argon2id memory cost for passwords, in KiB" }),
    timeCost: int({ env: "VERDICT_ARGON2_TIME_COST", default: 3, min: 1, max: 100, doc: "argon2id passes over memory" }),
    parallelism: int({ env: "VERDICT_ARGON2_PARALLELISM", default: 4, min: 1, max: 64, doc: "argon2id threads per hash" }),
    maxConcurrent: int({
      env: "VERDICT_ARGON2_MAX_CONCURRENT",
      default: 1,
      min: 1,
      max: 64,
      doc: "password hashes/verifications running at once (each takes 64 MiB and several threads); up to 256 more queue, beyond that Login answers `RESOURCE_EXHAUSTED`",
    }),
  },
  shutdownGraceMs: int({
    env: "VERDICT_SHUTDOWN_GRACE_MS",
    default: 10_000,
    min: 0,
    max: 10 * MINUTE_MS,
    doc: "how long the whole shutdown may take after SIGTERM: calls in flight get all of it but a reserve (a quarter, at most 1 s) in which the engine, bus and database close",
  }),
  audit: {
    enabled: bool({
      env: "VERDICT_AUDIT_DECISIONS",
      default: true,
      doc: "write the decision audit trail (JSON lines, `\"msg\":\"decision\"`) on stdout: every denial and sampled allows, never the credential",
    }),
    allowSampleRate: fraction({ env: "VERDICT_AUDIT_ALLOW_SAMPLE_RATE", default: 0.01, doc: "fraction of allows audited" }),
    flushIntervalMs: int({ env: "VERDICT_AUDIT_FLUSH_MS", default: 1000, min: 10, max: HOUR_MS, doc: "how often the audit trail is written (in batches); sooner under load: 256 records waiting are written at once, in pieces of at most 256 so that writing never holds Check for long" }),
    maxPending: int({
      env: "VERDICT_AUDIT_MAX_PENDING",
      default: 10_000,
      min: 1,
      max: 10_000_000,
      doc: "most audit records waiting to be written; beyond that they are dropped and counted (`verdict_audit_dropped_total`)",
    }),
  },
  extAuthz: {
    rulesPath: text({
      env: "VERDICT_EXT_AUTHZ_RULES",
      default: "",
      shown: "(built-in rules)",
      rule: "a file path",
      doc: "Envoy ext_authz route rules file (YAML or JSON); unset: conventional actions (see [docs/envoy.md](docs/envoy.md))",
    }),
    reloadIntervalMs: int({
      env: "VERDICT_EXT_AUTHZ_RELOAD_MS",
      default: 5000,
      min: 0,
      max: HOUR_MS,
      doc: "how often the rules file is checked for changes besides file-system events; 0 turns polling off",
    }),
    timeoutMs: int({
      env: "VERDICT_EXT_AUTHZ_TIMEOUT_MS",
      default: 150,
      min: 1,
      max: MINUTE_MS,
      doc: "how long one ext_authz Check may wait for a decision before failing closed (Envoy waits 200 ms by default)",
    }),
    ambiguousPaths: oneOf({
      env: "VERDICT_EXT_AUTHZ_AMBIGUOUS_PATHS",
      default: "deny",
      values: ["deny", "normalize"],
      doc: "a path that an upstream may split differently once decoded (`%2F`, `%5C`, `\\`, `;`, `//`, dot segments): `deny` answers 400 `INVALID_REQUEST`; `normalize` matches the rules against the normalised path",
    }),
  },
  rateLimit: {
    perMinute: int({
      env: "VERDICT_RATE_LIMIT_PER_MINUTE",
      default: 1000,
      min: 0,
      max: 1_000_000_000,
      doc: "units (Checks, by default 1 each) a credential may spend in any sliding minute when no key, role or tenant limit applies; 0: no minute limit",
    }),
    perHour: int({
      env: "VERDICT_RATE_LIMIT_PER_HOUR",
      default: 10_000,
      min: 0,
      max: 1_000_000_000,
      doc: "the same in any sliding hour; 0: no hour limit",
    }),
    burst: int({
      env: "VERDICT_RATE_LIMIT_BURST",
      default: 0,
      min: 0,
      max: 1_000_000_000,
      doc: "if not 0, most units a credential may spend within one 3-second slot of the minute (at most the per-minute limit)",
    }),
    failOpen: bool({
      env: "VERDICT_RATE_LIMIT_FAIL_OPEN",
      default: true,
      doc: "with `REDIS_URL` (or `VERDICT_WORKERS` above 1 without it), while Redis (the primary process) cannot be reached: `true` keeps answering from this replica's (worker's) own counts (the fleet may admit up to N times a limit), `false` answers `RATE_LIMITED` to every limited credential",
    }),
    syncIntervalMs: int({
      env: "VERDICT_RATE_LIMIT_SYNC_MS",
      default: 50,
      min: 5,
      max: 10_000,
      doc: "with `REDIS_URL`, how often each replica (each worker) exchanges its counts with the fleet; with `VERDICT_WORKERS` above 1 and no Redis, how often each worker exchanges them with the primary process (the overshoot across replicas and workers grows with it)",
    }),
    redisPrefix: text({
      env: "VERDICT_RATE_LIMIT_REDIS_PREFIX",
      default: "verdict:ratelimit",
      pattern: /^[\x21-\x7e]{1,128}$/,
      rule: "1 to 128 printable characters without spaces",
      doc: "prefix of the Redis keys holding the fleet's counts; every replica of one deployment uses the same",
    }),
    maxTracked: int({
      env: "VERDICT_RATE_LIMIT_MAX_TRACKED",
      default: 1_000_000,
      min: 1000,
      max: 100_000_000,
      doc: "most credentials counted at once (about 214 bytes each); beyond it the longest-tracked is forgotten and counted (`verdict_rate_limit_evictions_total`)",
    }),
  },
  tokens: {
    issuer: text({ env: "VERDICT_JWT_ISSUER", default: "verdict", doc: "`iss` of Verdict's tokens" }),
    audience: text({ env: "VERDICT_JWT_AUDIENCE", default: "verdict", doc: "`aud` of Verdict's tokens" }),
    accessTtlMs: seconds({ env: "VERDICT_ACCESS_TOKEN_TTL_SECONDS", default: 3600, min: 1, max: DAY_SECONDS, doc: "access-token lifetime (also the key overlap after rotation)" }),
    refreshTtlMs: seconds({
      env: "VERDICT_REFRESH_TOKEN_TTL_SECONDS",
      default: 30 * DAY_SECONDS,
      shown: "`2592000` (30 days)",
      min: 60,
      max: 365 * DAY_SECONDS,
      doc: "refresh-token lifetime, renewed by each Refresh",
    }),
    signingAlg: oneOf({ env: "VERDICT_JWT_SIGNING_ALG", default: "EdDSA", values: ["EdDSA", "ES256"], doc: "algorithm of new signing keys" }),
    jwtSecret: secret({ env: "VERDICT_JWT_SECRET", rule: "at least 32 bytes", parse: parseJwtSecret, doc: "HS256 mode: tokens are signed with this shared secret and no keys are stored" }),
    keyEncryptionKey: secret({
      env: "VERDICT_KEY_ENCRYPTION_KEY",
      rule: "32 bytes as 64 hex characters or base64",
      parse: parseKeyEncryptionKey,
      doc: "seals private signing keys at rest; unset: they are stored as plain PEM (see above)",
    }),
    leewayMs: seconds({ env: "VERDICT_JWT_LEEWAY_SECONDS", default: 0, min: 0, max: 600, doc: "clock skew tolerated on `exp`, `nbf`, `iat`" }),
    tenantClaim: jwtTenantClaim,
    claimsCacheSize: int({ env: "VERDICT_TOKEN_CACHE_SIZE", default: 100_000, min: 0, max: 10_000_000, doc: "verified-claims cache entries (0: off)" }),
    oidcIssuers: custom({
      env: "VERDICT_OIDC_ISSUERS",
      default: Object.freeze([]),
      shown: "`[]`",
      rule: "JSON array of issuers",
      parse: (value: string, env: Env) => parseOidcIssuers("VERDICT_OIDC_ISSUERS", value, jwtTenantClaim.read(env)),
      doc: "external issuers whose tokens Check accepts (see [External identity providers](#external-identity-providers-oidc))",
    }),
    loginMaxAttempts: int({
      env: "VERDICT_LOGIN_MAX_ATTEMPTS",
      default: 5,
      min: 1,
      max: 10_000,
      doc: "failed logins allowed per username and client address in one window (Login over gRPC and HTTP, and Basic credentials on admin calls, together)",
    }),
    loginMaxAttemptsPerAddress: int({
      env: "VERDICT_LOGIN_MAX_ATTEMPTS_PER_ADDRESS",
      default: 30,
      min: 1,
      max: 1_000_000,
      doc: "failed logins allowed per client address in one window, whatever the usernames (known or not); and, counted apart, failed lookups of presented refresh tokens, sessions at sign-out and sign-in states (see [Tokens](#tokens))",
    }),
    loginWindowMs: seconds({ env: "VERDICT_LOGIN_WINDOW_SECONDS", default: 300, min: 1, max: DAY_SECONDS, doc: "the failed-login window (also of failed refresh tokens, sign-outs and sign-in callbacks)" }),
  },
  oauth: {
    providers: custom({
      env: "VERDICT_OAUTH_PROVIDERS",
      default: Object.freeze([]),
      shown: "`[]`",
      rule: "JSON array of providers",
      parse: (value: string, env: Env) => parseOAuthProviders("VERDICT_OAUTH_PROVIDERS", value, env, returnUrls.read(env), publicUrl.read(env)),
      doc: "identity providers people sign in with (see [Signing in with an identity provider](#signing-in-with-an-identity-provider))",
    }),
    publicUrl,
    returnUrls,
    stateTtlMs: seconds({ env: "VERDICT_OAUTH_STATE_TTL_SECONDS", default: 600, min: 10, max: 3600, doc: "how long a started sign-in may take before its state expires" }),
    authorizeMaxPerAddress: int({
      env: "VERDICT_OAUTH_AUTHORIZE_MAX_PER_ADDRESS",
      default: 60,
      min: 1,
      max: 1_000_000,
      doc: "sign-ins one client address may start and leave unfinished within `VERDICT_OAUTH_STATE_TTL_SECONDS` (a finished one gives its place back); beyond that `/authorize` answers 429 with `Retry-After`",
    }),
    maxPending: int({
      env: "VERDICT_OAUTH_MAX_PENDING",
      default: 10_000,
      min: 1,
      max: 10_000_000,
      doc: "started sign-ins kept at once (the whole deployment); a new one beyond it drops the oldest (`verdict_oauth_pending_dropped_total`), whose callback then answers `state_invalid`",
    }),
    cookie: {
      name: text({
        env: "VERDICT_SESSION_COOKIE_NAME",
        default: "verdict_session",
        pattern: /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/,
        rule: "a cookie name (1 to 64 token characters)",
        doc: "the session cookie set after a browser sign-in (the access token); Check, ext_authz and Logout read it. The refresh cookie beside it is `<name>_refresh`",
      }),
      secure: bool({ env: "VERDICT_SESSION_COOKIE_SECURE", default: true, doc: "mark the cookies `Secure` (turn off only for plain-http development)" }),
      domain: text({ env: "VERDICT_SESSION_COOKIE_DOMAIN", default: "", shown: "(host-only)", pattern: /^[A-Za-z0-9.-]{1,253}$/, rule: "a domain", doc: "`Domain` of the session cookie (the refresh cookie stays host-only)" }),
    },
  },
  cors: {
    origins: custom({
      env: "VERDICT_CORS_ORIGINS",
      default: Object.freeze([] as string[]),
      shown: "(none: no CORS)",
      rule: "comma-separated origins (`scheme://host[:port]`), or `*` alone",
      parse: (value: string, env: Env) => parseCorsOrigins("VERDICT_CORS_ORIGINS", value, corsCredentials.read(env)),
      doc: "origins whose pages may call the HTTP API (Connect, gRPC-web) from a browser; `*`: any origin, refused with credentials",
    }),
    allowCredentials: corsCredentials,
  },
};

/** Verdict's configuration, read from the environment as `settings` declares. */
export type Config = Resolved<typeof settings>;

/** Tokens: Verdict's own (Login / Refresh / Logout), their keys, and external issuers. */
export type TokenSettings = Config["tokens"];

/** Sign-in through identity providers and the session cookie. */
export type OAuthSettings = Config["oauth"];

/**
 * Builds the frozen configuration from `env` (process.env by default), VERDICT_PRESET's values
 * under it, or throws ConfigError naming every bad variable.
 */
export function loadConfig(env: Env = process.env): Config {
  const config = readSettings(settings, withPreset(env));
  const problem = rateLimitSpecProblem({ ...config.rateLimit, shadow: false });
  if (problem) {
    const named = problem.replaceAll("per_minute", "VERDICT_RATE_LIMIT_PER_MINUTE").replaceAll("per_hour", "VERDICT_RATE_LIMIT_PER_HOUR").replaceAll("burst", "VERDICT_RATE_LIMIT_BURST");
    throw new ConfigError(named);
  }
  return config;
}

/** `env` with VERDICT_PRESET's variables added under it: a variable set explicitly (not empty) wins. */
export function withPreset(env: Env): Env {
  const name = settings.preset.read(env);
  if (name === "") return env;
  const merged: Record<string, string | undefined> = { ...PRESETS[name].values };
  for (const [variable, value] of Object.entries(env)) if (value !== undefined && value !== "") merged[variable] = value;
  return merged;
}
