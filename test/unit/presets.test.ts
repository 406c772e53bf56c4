import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, settings } from "../../src/config/config.js";
import { PRESETS, PRESET_NAMES } from "../../src/config/presets.js";
import { effectiveConfig, formatEffectiveConfig } from "../../src/config/print-config.js";
import { listSettings } from "../../src/config/setting.js";

const declared = new Map(listSettings(settings).map((p) => [p.setting.env, p]));

/** The value at a Config path ("tokens.accessTtlMs"). */
const at = (config: object, path: string): unknown => path.split(".").reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], config);

describe("presets", () => {
  it.each(PRESET_NAMES)("%s names only declared variables, each with a valid value that the Config takes", (name) => {
    const config = loadConfig({ VERDICT_PRESET: name });
    expect(config.preset).toBe(name);
    for (const [variable, value] of Object.entries(PRESETS[name].values)) {
      const placed = declared.get(variable);
      expect(placed, `${variable} is not a declared setting`).toBeDefined();
      expect(at(config, placed!.path)).toEqual(placed!.setting.read({ [variable]: value }));
    }
  });

  it("each preset builds on the one before", () => {
    for (const [smaller, larger] of [["basic", "saas"], ["saas", "enterprise"]] as const) {
      for (const variable of Object.keys(PRESETS[smaller].values)) expect(PRESETS[larger].values, variable).toHaveProperty(variable);
    }
  });

  it("basic pins the built-in defaults: no preset and basic give the same Config", () => {
    const { preset: _a, ...none } = loadConfig({});
    const { preset: _b, ...basic } = loadConfig({ VERDICT_PRESET: "basic" });
    expect(basic).toEqual(none);
  });

  it("enterprise requires Check callers, audits every decision, shortens tokens and tightens logins and rate limits", () => {
    const c = loadConfig({ VERDICT_PRESET: "enterprise" });
    expect([c.checkRequireCaller, c.audit.enabled, c.audit.allowSampleRate, c.adminOverride, c.root.disableAfterSetup]).toEqual([true, true, 1, false, true]);
    expect([c.tokens.accessTtlMs, c.tokens.refreshTtlMs, c.tokens.loginMaxAttempts]).toEqual([900_000, 604_800_000, 3]);
    expect([c.rateLimit.perMinute, c.rateLimit.perHour]).toEqual([300, 3000]);
  });

  it("saas pins the default rate limits; enterprise's are tighter; an explicit limit wins", () => {
    const saas = loadConfig({ VERDICT_PRESET: "saas" });
    expect([saas.rateLimit.perMinute, saas.rateLimit.perHour, saas.rateLimit.failOpen]).toEqual([1000, 10000, true]);
    expect(saas.rateLimit).toEqual(loadConfig({}).rateLimit);
    const enterprise = loadConfig({ VERDICT_PRESET: "enterprise" });
    expect(enterprise.rateLimit.perMinute).toBeLessThan(saas.rateLimit.perMinute);
    expect(loadConfig({ VERDICT_PRESET: "enterprise", VERDICT_RATE_LIMIT_PER_MINUTE: "0" }).rateLimit.perMinute).toBe(0);
  });

  it("a variable set explicitly overrides the preset; an empty one does not", () => {
    const c = loadConfig({ VERDICT_PRESET: "enterprise", VERDICT_CHECK_REQUIRE_CALLER: "false", VERDICT_LOGIN_MAX_ATTEMPTS: "" });
    expect(c.checkRequireCaller).toBe(false);
    expect(c.tokens.loginMaxAttempts).toBe(3);
  });

  it("refuses an unknown preset at start", () => {
    expect(() => loadConfig({ VERDICT_PRESET: "large" })).toThrow(ConfigError);
    expect(() => loadConfig({ VERDICT_PRESET: "large" })).toThrow("VERDICT_PRESET must be one of basic, saas, enterprise");
  });
});

describe("the effective configuration (--print-config)", () => {
  const env = {
    VERDICT_PRESET: "saas",
    VERDICT_ADMIN_OVERRIDE: "true",
    VERDICT_ROOT_PASSWORD: "a-root-password-123",
    DATABASE_URL: "postgres://verdict:db-secret-1@db:5432/verdict?sslmode=require",
    REDIS_URL: "redis://:redis-secret-1@redis:6379",
    VERDICT_JWT_SECRET: "j".repeat(40),
    VERDICT_KEY_ENCRYPTION_KEY: "ab".repeat(32),
  };
  const lines = effectiveConfig(env);
  const line = (variable: string) => lines.find((l) => l.variable === variable)!;

  it("lists every declared variable once, with its source", () => {
    expect(lines.map((l) => l.variable)).toEqual([...declared.keys()]);
    expect(line("VERDICT_PRESET")).toEqual({ variable: "VERDICT_PRESET", value: "saas", source: "env" });
    expect(line("VERDICT_ADMIN_OVERRIDE")).toEqual({ variable: "VERDICT_ADMIN_OVERRIDE", value: true, source: "env" });
    expect(line("VERDICT_DISABLE_ROOT_AFTER_SETUP")).toEqual({ variable: "VERDICT_DISABLE_ROOT_AFTER_SETUP", value: true, source: "preset saas" });
    expect(line("VERDICT_LOG_LEVEL")).toEqual({ variable: "VERDICT_LOG_LEVEL", value: "info", source: "default" });
  });

  it("masks every secret and a URL's password, and never prints one", () => {
    expect(line("VERDICT_ROOT_PASSWORD").value).toBe("[redacted]");
    expect(line("VERDICT_JWT_SECRET").value).toBe("[redacted]");
    expect(line("VERDICT_KEY_ENCRYPTION_KEY").value).toBe("[redacted]");
    expect(line("DATABASE_URL").value).toBe("postgres://verdict:%5Bredacted%5D@db:5432/verdict?sslmode=require");
    expect(line("REDIS_URL").value).toBe("redis://:%5Bredacted%5D@redis:6379");
    expect(line("VERDICT_OAUTH_PROVIDERS").value).toEqual([]);
    const text = formatEffectiveConfig(lines);
    for (const secret of ["a-root-password-123", "db-secret-1", "redis-secret-1", "j".repeat(40), "ab".repeat(32)]) expect(text).not.toContain(secret);
    expect(text).toMatch(/^VERDICT_DISABLE_ROOT_AFTER_SETUP=true +# preset saas$/m);
  });

  it("an unset secret shows as empty", () => {
    expect(effectiveConfig({}).find((l) => l.variable === "VERDICT_ROOT_PASSWORD")!.value).toBe("");
  });

  it("refuses a bad configuration as start does", () => {
    expect(() => effectiveConfig({ VERDICT_PRESET: "saas", VERDICT_LOG_LEVEL: "loud" })).toThrow(ConfigError);
  });
});
