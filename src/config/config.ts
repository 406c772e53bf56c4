/**
 * One typed, frozen configuration built from the environment. Every setting and its default is
 * here; a bad value fails at start with a message naming the variable.
 */

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
  readonly redisUrl: string;
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
  /** How often each replica asks the store for a newer policy version. */
  readonly pollIntervalMs: number;
  /** How long a Check with min_version may wait for this replica to catch up. */
  readonly minVersionWaitMs: number;
  readonly argon2: { readonly memoryCost: number; readonly timeCost: number; readonly parallelism: number };
  readonly shutdownGraceMs: number;
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

/** Builds the configuration from `env` (process.env by default) or throws ConfigError. */
export function loadConfig(env: Env = process.env): Config {
  const config: Config = {
    grpcAddr: address(env, "VERDICT_GRPC_ADDR", "0.0.0.0:50051"),
    httpAddr: address(env, "VERDICT_HTTP_ADDR", "0.0.0.0:8080"),
    dataDir: str(env, "VERDICT_DATA_DIR", "./data"),
    databaseUrl: url(env, "DATABASE_URL", ["postgres:", "postgresql:"]),
    redisUrl: url(env, "REDIS_URL", ["redis:", "rediss:"]),
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
    },
    shutdownGraceMs: int(env, "VERDICT_SHUTDOWN_GRACE_MS", 10_000, 0, 600_000),
  };
  if (config.root.password !== "" && config.root.password.length < 12) {
    throw new ConfigError("VERDICT_ROOT_PASSWORD must be at least 12 characters");
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$/.test(config.root.username)) {
    throw new ConfigError("VERDICT_ROOT_USERNAME must be letters, digits, '_', '.', '@', '-' (at most 128)");
  }
  return Object.freeze(config);
}
