/**
 * loadConfig: the defaults, and for each kind of setting the values it takes and the message a
 * bad value stops Verdict with (naming the variable and what it allows, never a secret).
 */
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config/config.js";

const fails = (env: Record<string, string>, message: RegExp | string): void => {
  expect(() => loadConfig(env)).toThrow(ConfigError);
  expect(() => loadConfig(env)).toThrow(message);
};

const issuer = { issuer: "https://idp.example.com", audience: "verdict", jwksUrl: "https://idp.example.com/jwks" };
const issuers = (...entries: unknown[]): Record<string, string> => ({ VERDICT_OIDC_ISSUERS: JSON.stringify(entries) });

describe("loadConfig defaults", () => {
  it("an empty environment gives the documented defaults", () => {
    expect(loadConfig({})).toEqual({
      preset: "",
      grpcAddr: { host: "0.0.0.0", port: 50051 },
      grpcFastLane: true,
      heapGrowingPercent: 50,
      grpcLimits: { maxConcurrentStreams: 100, maxConnections: 1000, requestTimeoutMs: 5000 },
      httpAddr: { host: "0.0.0.0", port: 8080 },
      workers: 1,
      workerGc: "auto",
      trustedProxies: [],
      ipv6LimitPrefix: 64,
      dataDir: "./data",
      databaseUrl: "",
      databaseSchema: "",
      redisUrl: "",
      redisChannel: "verdict:invalidations",
      logLevel: "info",
      root: { username: "root", password: "", enabled: true, disableAfterSetup: false },
      adminOverride: false,
      adminRole: "ADMIN",
      checkRequireCaller: false,
      failOpen: false,
      maxRequestBytes: 65536,
      keyUse: { flushIntervalMs: 5000, maxPending: 100_000 },
      pollIntervalMs: 1000,
      minVersionWaitMs: 100,
      argon2: { memoryCost: 65536, timeCost: 3, parallelism: 4, maxConcurrent: 1 },
      shutdownGraceMs: 10_000,
      audit: { enabled: true, allowSampleRate: 0.01, flushIntervalMs: 1000, maxPending: 10_000 },
      extAuthz: { rulesPath: "", reloadIntervalMs: 5000, timeoutMs: 150, ambiguousPaths: "deny" },
      rateLimit: { perMinute: 1000, perHour: 10_000, burst: 0, failOpen: true, syncIntervalMs: 50, redisPrefix: "verdict:ratelimit", maxTracked: 1_000_000 },
      tokens: {
        issuer: "verdict",
        audience: "verdict",
        accessTtlMs: 3_600_000,
        refreshTtlMs: 30 * 86_400_000,
        signingAlg: "EdDSA",
        jwtSecret: "",
        keyEncryptionKey: "",
        leewayMs: 0,
        tenantClaim: "tenant_id",
        claimsCacheSize: 100_000,
        oidcIssuers: [],
        loginMaxAttempts: 5,
        loginMaxAttemptsPerAddress: 30,
        loginWindowMs: 300_000,
      },
      oauth: {
        providers: [],
        publicUrl: "",
        returnUrls: [],
        stateTtlMs: 600_000,
        authorizeMaxPerAddress: 60,
        maxPending: 10_000,
        cookie: { name: "verdict_session", secure: true, domain: "" },
      },
      cors: { origins: [], allowCredentials: false },
    });
  });

  it("an empty value means the default; the result is frozen all the way down", () => {
    const config = loadConfig({ VERDICT_MAX_REQUEST_BYTES: "", VERDICT_ROOT_ENABLED: "", VERDICT_LOG_LEVEL: "" });
    expect([config.maxRequestBytes, config.root.enabled, config.logLevel]).toEqual([65536, true, "info"]);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.root)).toBe(true);
    expect(Object.isFrozen(config.tokens)).toBe(true);
    expect(Object.isFrozen(config.grpcAddr)).toBe(true);
    expect(Object.isFrozen(config.tokens.oidcIssuers)).toBe(true);
  });

  it("reads process.env when no environment is given", () => {
    expect(loadConfig().tokens.issuer).toBe(process.env.VERDICT_JWT_ISSUER || "verdict");
  });
});

describe("whole numbers and ranges", () => {
  it("takes the bounds and converts seconds to milliseconds", () => {
    const config = loadConfig({ VERDICT_MAX_REQUEST_BYTES: "1024", VERDICT_MIN_VERSION_WAIT_MS: "0", VERDICT_ACCESS_TOKEN_TTL_SECONDS: "86400", VERDICT_JWT_LEEWAY_SECONDS: "5" });
    expect(config.maxRequestBytes).toBe(1024);
    expect(config.minVersionWaitMs).toBe(0);
    expect(config.tokens.accessTtlMs).toBe(86_400_000);
    expect(config.tokens.leewayMs).toBe(5000);
  });

  it.each([
    ["VERDICT_MAX_REQUEST_BYTES", "1023", "VERDICT_MAX_REQUEST_BYTES must be between 1024 and 16777216, got 1023"],
    ["VERDICT_MAX_REQUEST_BYTES", "16777217", "VERDICT_MAX_REQUEST_BYTES must be between 1024 and 16777216, got 16777217"],
    ["VERDICT_ACCESS_TOKEN_TTL_SECONDS", "0", "VERDICT_ACCESS_TOKEN_TTL_SECONDS must be between 1 and 86400, got 0"],
    ["VERDICT_REFRESH_TOKEN_TTL_SECONDS", "59", "VERDICT_REFRESH_TOKEN_TTL_SECONDS must be between 60 and 31536000, got 59"],
    ["VERDICT_EXT_AUTHZ_TIMEOUT_MS", "60001", "VERDICT_EXT_AUTHZ_TIMEOUT_MS must be between 1 and 60000, got 60001"],
  ])("%s=%s is out of range", (name, value, message) => fails({ [name]: value }, message));

  it.each(["-1", "1.5", "1e3", "0x10", " 5", "five"])("%j is not a whole number", (value) =>
    fails({ VERDICT_POLL_INTERVAL_MS: value }, `VERDICT_POLL_INTERVAL_MS must be a whole number, got ${JSON.stringify(value)}`),
  );

  it("a fraction is from 0 to 1", () => {
    expect(loadConfig({ VERDICT_AUDIT_ALLOW_SAMPLE_RATE: "0" }).audit.allowSampleRate).toBe(0);
    expect(loadConfig({ VERDICT_AUDIT_ALLOW_SAMPLE_RATE: "1" }).audit.allowSampleRate).toBe(1);
    expect(loadConfig({ VERDICT_AUDIT_ALLOW_SAMPLE_RATE: ".25" }).audit.allowSampleRate).toBe(0.25);
    for (const bad of ["1.01", "-0.1", "half", "NaN"]) fails({ VERDICT_AUDIT_ALLOW_SAMPLE_RATE: bad }, `VERDICT_AUDIT_ALLOW_SAMPLE_RATE must be a number from 0 to 1, got ${JSON.stringify(bad)}`);
  });

  it("default rate limits must make sense together", () => {
    expect(loadConfig({ VERDICT_RATE_LIMIT_PER_MINUTE: "0", VERDICT_RATE_LIMIT_PER_HOUR: "0" }).rateLimit).toMatchObject({ perMinute: 0, perHour: 0 });
    fails({ VERDICT_RATE_LIMIT_PER_MINUTE: "0", VERDICT_RATE_LIMIT_BURST: "5" }, "VERDICT_RATE_LIMIT_BURST needs a VERDICT_RATE_LIMIT_PER_MINUTE limit");
    fails({ VERDICT_RATE_LIMIT_BURST: "1001" }, "VERDICT_RATE_LIMIT_BURST (1001) must not exceed VERDICT_RATE_LIMIT_PER_MINUTE (1000)");
    fails({ VERDICT_RATE_LIMIT_PER_MINUTE: "20000" }, "VERDICT_RATE_LIMIT_PER_MINUTE (20000) must not exceed VERDICT_RATE_LIMIT_PER_HOUR (10000)");
    fails({ VERDICT_RATE_LIMIT_PER_HOUR: "-1" }, "VERDICT_RATE_LIMIT_PER_HOUR must be");
  });
});

describe("booleans and fixed lists", () => {
  it.each([["true"], ["TRUE"], ["1"], ["yes"], ["on"]])("%s is true", (value) => expect(loadConfig({ VERDICT_FAIL_OPEN: value }).failOpen).toBe(true));
  it.each([["false"], ["0"], ["No"], ["off"]])("%s is false", (value) => expect(loadConfig({ VERDICT_ROOT_ENABLED: value }).root.enabled).toBe(false));
  it("anything else is refused", () => fails({ VERDICT_ADMIN_OVERRIDE: "maybe" }, 'VERDICT_ADMIN_OVERRIDE must be true or false, got "maybe"'));

  it("a fixed list takes only its values", () => {
    expect(loadConfig({ VERDICT_LOG_LEVEL: "debug", VERDICT_JWT_SIGNING_ALG: "ES256" })).toMatchObject({ logLevel: "debug", tokens: { signingAlg: "ES256" } });
    fails({ VERDICT_LOG_LEVEL: "verbose" }, 'VERDICT_LOG_LEVEL must be one of debug, info, warn, error, got "verbose"');
    fails({ VERDICT_JWT_SIGNING_ALG: "RS256" }, 'VERDICT_JWT_SIGNING_ALG must be one of EdDSA, ES256, got "RS256"');
  });
});

describe("addresses, URLs and names", () => {
  it("listen addresses: host:port, [v6]:port, an empty host is every interface", () => {
    expect(loadConfig({ VERDICT_GRPC_ADDR: "127.0.0.1:0" }).grpcAddr).toEqual({ host: "127.0.0.1", port: 0 });
    expect(loadConfig({ VERDICT_GRPC_ADDR: "[::1]:50051" }).grpcAddr).toEqual({ host: "::1", port: 50051 });
    expect(loadConfig({ VERDICT_HTTP_ADDR: ":9090" }).httpAddr).toEqual({ host: "0.0.0.0", port: 9090 });
    for (const bad of ["8080", "host:65536", "host:", "a b:80"]) fails({ VERDICT_HTTP_ADDR: bad }, `VERDICT_HTTP_ADDR must be host:port (for example 0.0.0.0:8080), got ${JSON.stringify(bad)}`);
  });

  it("URLs need their scheme and are never repeated in a message (they may hold a password)", () => {
    const config = loadConfig({ DATABASE_URL: "postgresql://u:p@db/verdict", REDIS_URL: "rediss://redis:6380" });
    expect([config.databaseUrl, config.redisUrl]).toEqual(["postgresql://u:p@db/verdict", "rediss://redis:6380"]);
    fails({ DATABASE_URL: "mysql://u:hunter2@db/x" }, "DATABASE_URL must start with postgres: or postgresql:");
    fails({ REDIS_URL: "http://u:hunter2@redis" }, "REDIS_URL must start with redis: or rediss:");
    fails({ DATABASE_URL: "not a url hunter2" }, "DATABASE_URL is not a valid URL");
    expect(() => loadConfig({ DATABASE_URL: "mysql://u:hunter2@db/x" })).not.toThrow(/hunter2/);
  });

  it("schema, channel and root username follow their rules", () => {
    expect(loadConfig({ VERDICT_DATABASE_SCHEMA: "tenant_a1" }).databaseSchema).toBe("tenant_a1");
    fails({ VERDICT_DATABASE_SCHEMA: "1abc" }, /VERDICT_DATABASE_SCHEMA must be 1 to 63 lower-case letters, digits or _ \(not starting with a digit\), got "1abc"/);
    fails({ VERDICT_DATABASE_SCHEMA: "a".repeat(64) }, /VERDICT_DATABASE_SCHEMA must be 1 to 63/);
    expect(loadConfig({ VERDICT_REDIS_CHANNEL: "verdict:prod" }).redisChannel).toBe("verdict:prod");
    fails({ VERDICT_REDIS_CHANNEL: "has space" }, /VERDICT_REDIS_CHANNEL must be 1 to 256 printable characters without spaces/);
    expect(loadConfig({ VERDICT_ROOT_USERNAME: "ops@example.com" }).root.username).toBe("ops@example.com");
    fails({ VERDICT_ROOT_USERNAME: "-root" }, /VERDICT_ROOT_USERNAME must be letters, digits/);
    fails({ VERDICT_ROOT_USERNAME: "r".repeat(129) }, /VERDICT_ROOT_USERNAME must be letters, digits/);
  });
});

describe("secrets", () => {
  it("a short root password is refused without repeating it", () => {
    expect(loadConfig({ VERDICT_ROOT_PASSWORD: "twelve-chars" }).root.password).toBe("twelve-chars");
    fails({ VERDICT_ROOT_PASSWORD: "short-pw" }, /^VERDICT_ROOT_PASSWORD must be at least 12 characters$/);
  });

  it("the JWT secret and key-encryption key are checked and never repeated", () => {
    const kek = "ab".repeat(32);
    const config = loadConfig({ VERDICT_JWT_SECRET: "s".repeat(32), VERDICT_KEY_ENCRYPTION_KEY: kek });
    expect([config.tokens.jwtSecret, config.tokens.keyEncryptionKey]).toEqual(["s".repeat(32), kek]);
    fails({ VERDICT_JWT_SECRET: "secret-31-bytes-secret-31-bytes" }, /^VERDICT_JWT_SECRET must be at least 32 bytes, got 31$/);
    fails({ VERDICT_KEY_ENCRYPTION_KEY: "not a key!" }, /^VERDICT_KEY_ENCRYPTION_KEY must be 32 bytes/);
    expect(() => loadConfig({ VERDICT_KEY_ENCRYPTION_KEY: "c2hvcnQta2V5" })).toThrow(/^VERDICT_KEY_ENCRYPTION_KEY must decode to 32 bytes, got 9$/);
  });

  it("every bad variable is named in one error", () => {
    fails({ VERDICT_LOG_LEVEL: "loud", VERDICT_GRPC_ADDR: "x", VERDICT_ROOT_PASSWORD: "short" }, /VERDICT_GRPC_ADDR[\s\S]*VERDICT_LOG_LEVEL[\s\S]*VERDICT_ROOT_PASSWORD/);
  });
});

describe("VERDICT_OIDC_ISSUERS", () => {
  it("fills each issuer's defaults; tenantClaim defaults to VERDICT_JWT_TENANT_CLAIM", () => {
    const config = loadConfig({ ...issuers(issuer), VERDICT_JWT_TENANT_CLAIM: "org" });
    expect(config.tokens.oidcIssuers).toEqual([
      {
        issuer: "https://idp.example.com",
        audience: ["verdict"],
        jwksUrl: "https://idp.example.com/jwks",
        algorithms: ["RS256"],
        cacheTtlMs: 600_000,
        cooldownMs: 30_000,
        tenantClaim: "org",
        createUsers: false,
        defaultTenant: "",
        defaultRole: "",
      },
    ]);
  });

  it("takes every field", () => {
    const entry = { ...issuer, audience: ["a", "b"], jwksUrl: "http://127.0.0.1:9999/jwks", algorithms: ["ES256", "EdDSA"], cacheTtlSeconds: 60, cooldownSeconds: 1, tenantClaim: "tid", createUsers: true, defaultTenant: "*", defaultRole: "READ" };
    expect(loadConfig(issuers(entry)).tokens.oidcIssuers[0]).toEqual({
      issuer: "https://idp.example.com",
      audience: ["a", "b"],
      jwksUrl: "http://127.0.0.1:9999/jwks",
      algorithms: ["ES256", "EdDSA"],
      cacheTtlMs: 60_000,
      cooldownMs: 1000,
      tenantClaim: "tid",
      createUsers: true,
      defaultTenant: "*",
      defaultRole: "READ",
    });
  });

  it.each([
    ["not JSON", "{", "VERDICT_OIDC_ISSUERS must be a JSON array of issuers"],
    ["not an array", JSON.stringify(issuer), "VERDICT_OIDC_ISSUERS must be a JSON array of issuers"],
    ["an entry that is not an object", JSON.stringify([issuer, "x"]), "VERDICT_OIDC_ISSUERS[1] must be an object"],
    ["no issuer", JSON.stringify([{ ...issuer, issuer: undefined }]), "VERDICT_OIDC_ISSUERS[0].issuer is required"],
    ["no jwksUrl", JSON.stringify([{ ...issuer, jwksUrl: undefined }]), "VERDICT_OIDC_ISSUERS[0].jwksUrl is required"],
    ["an empty issuer", JSON.stringify([{ ...issuer, issuer: "" }]), "VERDICT_OIDC_ISSUERS[0].issuer must be a non-empty string"],
    ["an empty audience list", JSON.stringify([{ ...issuer, audience: [] }]), "VERDICT_OIDC_ISSUERS[0].audience must be a non-empty string or array of strings"],
    ["a number audience", JSON.stringify([{ ...issuer, audience: 7 }]), "VERDICT_OIDC_ISSUERS[0].audience must be a non-empty string or array of strings"],
    ["an empty audience in a list", JSON.stringify([{ ...issuer, audience: ["a", ""] }]), "VERDICT_OIDC_ISSUERS[0].audience[1] must be a non-empty string"],
    ["a bad jwksUrl", JSON.stringify([{ ...issuer, jwksUrl: "not a url" }]), "VERDICT_OIDC_ISSUERS[0].jwksUrl is not a valid URL"],
    ["plain http off loopback", JSON.stringify([{ ...issuer, jwksUrl: "http://idp.example.com/jwks" }]), "VERDICT_OIDC_ISSUERS[0].jwksUrl must be https (http only on a loopback host)"],
    ["HS256", JSON.stringify([{ ...issuer, algorithms: ["RS256", "HS256"] }]), "VERDICT_OIDC_ISSUERS[0].algorithms[1] must be RS256, ES256 or EdDSA"],
    ["a string of algorithms", JSON.stringify([{ ...issuer, algorithms: "RS256" }]), "VERDICT_OIDC_ISSUERS[0].algorithms must be a non-empty array of RS256, ES256, EdDSA"],
    ["no algorithms", JSON.stringify([{ ...issuer, algorithms: [] }]), "VERDICT_OIDC_ISSUERS[0].algorithms must be a non-empty array of RS256, ES256, EdDSA"],
    ["a zero TTL", JSON.stringify([{ ...issuer, cacheTtlSeconds: 0 }]), "VERDICT_OIDC_ISSUERS[0].cacheTtlSeconds must be a whole number of seconds from 1 to 86400"],
    ["a fractional cooldown", JSON.stringify([{ ...issuer, cooldownSeconds: 1.5 }]), "VERDICT_OIDC_ISSUERS[0].cooldownSeconds must be a whole number of seconds from 1 to 86400"],
    ["a string createUsers", JSON.stringify([{ ...issuer, createUsers: "yes" }]), "VERDICT_OIDC_ISSUERS[0].createUsers must be true or false"],
    ["createUsers without defaultTenant", JSON.stringify([{ ...issuer, createUsers: true, defaultRole: "READ" }]), "VERDICT_OIDC_ISSUERS[0].defaultTenant must be a non-empty string"],
    ["createUsers without defaultRole", JSON.stringify([{ ...issuer, createUsers: true, defaultTenant: "acme" }]), "VERDICT_OIDC_ISSUERS[0].defaultRole must be a non-empty string"],
  ])("%s is refused", (_what, value, message) => fails({ VERDICT_OIDC_ISSUERS: value }, message));

  it("null fields take their defaults; an empty array means no issuers", () => {
    const [entry] = loadConfig(issuers({ ...issuer, algorithms: null, cacheTtlSeconds: null, createUsers: null })).tokens.oidcIssuers;
    expect(entry).toMatchObject({ algorithms: ["RS256"], cacheTtlMs: 600_000, createUsers: false });
    expect(loadConfig({ VERDICT_OIDC_ISSUERS: "[]" }).tokens.oidcIssuers).toEqual([]);
  });
});
