/**
 * VERDICT_PRESET: one switch that sets a documented bundle of defaults. A preset is a set of
 * variables with values, applied under the environment: a variable set explicitly (not empty)
 * always wins over the preset. The README's preset table is generated from PRESETS
 * (`npm run docs:config`), and a test checks that every variable named here is declared.
 */

/** The presets' names. */
export const PRESET_NAMES = ["basic", "saas", "enterprise"] as const;

/** One preset's name. */
export type PresetName = (typeof PRESET_NAMES)[number];

/** One preset: what it is for and the variables it sets. */
export interface Preset {
  readonly doc: string;
  readonly values: Readonly<Record<string, string>>;
}

const basic: Preset = {
  doc: "one team: Verdict's own tokens (Login, Refresh, EdDSA keys) and the decision audit (every denial, 1 % of allows); the built-in defaults, pinned",
  values: {
    VERDICT_AUDIT_DECISIONS: "true",
    VERDICT_AUDIT_ALLOW_SAMPLE_RATE: "0.01",
    VERDICT_ACCESS_TOKEN_TTL_SECONDS: "3600",
  },
};

const saas: Preset = {
  doc: "many tenants: basic, plus strict tenant isolation (no admin override), root switched off once an admin holds every tenant, and per-credential rate limits (1000 a minute, 10000 an hour, kept answering from local counts while Redis is away)",
  values: {
    ...basic.values,
    VERDICT_ADMIN_OVERRIDE: "false",
    VERDICT_DISABLE_ROOT_AFTER_SETUP: "true",
    VERDICT_RATE_LIMIT_PER_MINUTE: "1000",
    VERDICT_RATE_LIMIT_PER_HOUR: "10000",
    VERDICT_RATE_LIMIT_FAIL_OPEN: "true",
  },
};

const enterprise: Preset = {
  doc: "saas, plus caller credentials required for Check (`check:decisions`), every decision audited, shorter tokens, a tighter failed-login limit and tighter rate limits (300 a minute, 3000 an hour; raise them per key, role or tenant through the Admin API)",
  values: {
    ...saas.values,
    VERDICT_RATE_LIMIT_PER_MINUTE: "300",
    VERDICT_RATE_LIMIT_PER_HOUR: "3000",
    VERDICT_CHECK_REQUIRE_CALLER: "true",
    VERDICT_AUDIT_ALLOW_SAMPLE_RATE: "1",
    VERDICT_ACCESS_TOKEN_TTL_SECONDS: "900",
    VERDICT_REFRESH_TOKEN_TTL_SECONDS: "604800",
    VERDICT_LOGIN_MAX_ATTEMPTS: "3",
  },
};

/** Every preset by name. */
export const PRESETS: Readonly<Record<PresetName, Preset>> = Object.freeze({ basic, saas, enterprise });
