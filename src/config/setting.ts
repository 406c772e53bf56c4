/**
 * The kinds of setting Verdict reads from the environment. Each kind knows its variable, default,
 * allowed values and description, parses one value with a message naming the variable, and says
 * how the README's settings table shows it. The declaration itself is in config.ts.
 */

/** The environment settings are read from. */
export type Env = Readonly<Record<string, string | undefined>>;

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

/** What every kind of setting is declared with. */
interface Common {
  /** The environment variable. */
  readonly env: string;
  /** What the setting does, for the README table (Markdown). */
  readonly doc: string;
  /** The default as the README shows it, when the plain value would not say enough. */
  readonly shown?: string;
}

/** One declared setting: read from the environment into a value of type T. */
export class Setting<T> {
  constructor(
    /** The environment variable. */
    readonly env: string,
    /** What the setting does (Markdown). */
    readonly doc: string,
    /** The default as the README shows it. */
    readonly shownDefault: string,
    /** The values allowed, as the README shows them. */
    readonly allowed: string,
    private readonly parse: (value: string, env: Env) => T,
    private readonly fallback: T,
    /** Masks a secret text value for --print-config. */
    private readonly mask?: (value: string) => string,
  ) {}

  /** The value as --print-config shows it: secrets masked. */
  show(value: T): unknown {
    return this.mask && typeof value === "string" ? this.mask(value) : value;
  }

  /** The value from `env`: the default when unset or empty, else the parsed value or ConfigError. */
  read(env: Env): T {
    const value = env[this.env];
    return value === undefined || value === "" ? this.fallback : this.parse(value, env);
  }
}

const code = (text: string | number): string => `\`${text}\``;

/** What --print-config shows for a secret: whether it is set, never the value. */
const MASKED = "[redacted]";
const maskSecret = (value: string): string => (value === "" ? "" : MASKED);
const maskUrlPassword = (value: string): string => {
  if (value === "") return value;
  const u = new URL(value);
  if (u.password !== "") u.password = MASKED;
  if (u.searchParams.has("password")) u.searchParams.set("password", MASKED);
  return u.toString();
};
const got = (value: string): string => `, got ${JSON.stringify(value)}`;

/** A whole number from min to max. */
export function int(o: Common & { readonly default: number; readonly min: number; readonly max: number }): Setting<number> {
  return new Setting(o.env, o.doc, o.shown ?? code(o.default), `${o.min} to ${o.max}`, (v) => wholeNumber(o.env, v, o.min, o.max), o.default);
}

/** A whole number of seconds from min to max in the environment; milliseconds in the Config. */
export function seconds(o: Common & { readonly default: number; readonly min: number; readonly max: number }): Setting<number> {
  return new Setting(o.env, o.doc, o.shown ?? code(o.default), `${o.min} to ${o.max} seconds`, (v) => wholeNumber(o.env, v, o.min, o.max) * 1000, o.default * 1000);
}

function wholeNumber(name: string, v: string, min: number, max: number): number {
  if (!/^\d+$/.test(v)) throw new ConfigError(`${name} must be a whole number${got(v)}`);
  const n = Number(v);
  if (n < min || n > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

/** A number from 0 to 1. */
export function fraction(o: Common & { readonly default: number }): Setting<number> {
  return new Setting(o.env, o.doc, o.shown ?? code(o.default), "0 to 1", (v) => {
    const n = Number(v);
    if (!/^\d*\.?\d+$/.test(v) || n > 1) throw new ConfigError(`${o.env} must be a number from 0 to 1${got(v)}`);
    return n;
  }, o.default);
}

/** true / false (also 1 / 0, yes / no, on / off). */
export function bool(o: Common & { readonly default: boolean }): Setting<boolean> {
  return new Setting(o.env, o.doc, o.shown ?? code(String(o.default)), "`true` or `false`", (v) => {
    if (/^(1|true|yes|on)$/i.test(v)) return true;
    if (/^(0|false|no|off)$/i.test(v)) return false;
    throw new ConfigError(`${o.env} must be true or false${got(v)}`);
  }, o.default);
}

/**
 * Text, optionally matching `pattern` (described by `rule`, which completes "must be ...").
 * A `sensitive` value is never repeated in an error message.
 */
export function text(o: Common & { readonly default: string; readonly pattern?: RegExp; readonly rule?: string; readonly sensitive?: boolean }): Setting<string> {
  const shown = o.shown ?? (o.default === "" ? "(unset)" : code(o.default));
  return new Setting(o.env, o.doc, shown, o.rule ?? "text", (v) => {
    if (o.pattern && !o.pattern.test(v)) throw new ConfigError(`${o.env} must be ${o.rule ?? `like ${o.pattern}`}${o.sensitive ? "" : got(v)}`);
    return v;
  }, o.default, o.sensitive ? maskSecret : undefined);
}

/** One of a fixed list of values. */
export function oneOf<const T extends string>(o: Common & { readonly default: T; readonly values: readonly T[] }): Setting<T> {
  return new Setting(o.env, o.doc, o.shown ?? code(o.default), o.values.map(code).join(", "), (v) => {
    if (!(o.values as readonly string[]).includes(v)) throw new ConfigError(`${o.env} must be one of ${o.values.join(", ")}${got(v)}`);
    return v as T;
  }, o.default);
}

/** A URL with one of `schemes` (like "postgres:"), or empty. Never repeated in a message: it may hold a password. */
export function url(o: Common & { readonly schemes: readonly string[] }): Setting<string> {
  return new Setting(o.env, o.doc, o.shown ?? "(unset)", `${o.schemes.map((s) => code(`${s}//...`)).join(" or ")} URL`, (v) => {
    let parsed: URL;
    try {
      parsed = new URL(v);
    } catch {
      throw new ConfigError(`${o.env} is not a valid URL`);
    }
    if (!o.schemes.includes(parsed.protocol)) throw new ConfigError(`${o.env} must start with ${o.schemes.join(" or ")}`);
    return v;
  }, "", maskUrlPassword);
}

/** host:port to listen on; an empty host means every interface. */
export function address(o: Common & { readonly default: string }): Setting<ListenAddress> {
  const parse = (v: string): ListenAddress => {
    const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]*):(\d{1,5})$/.exec(v);
    if (!m || Number(m[2]) > 65535) throw new ConfigError(`${o.env} must be host:port (for example 0.0.0.0:8080)${got(v)}`);
    const host = m[1] === "" ? "0.0.0.0" : m[1].replace(/^\[|\]$/g, "");
    return Object.freeze({ host, port: Number(m[2]) });
  };
  return new Setting(o.env, o.doc, o.shown ?? code(o.default), "`host:port`", parse, parse(o.default));
}

/**
 * A secret checked by `parse` (which throws a message naming the variable); kept as given, empty
 * by default, never repeated in a message.
 */
export function secret(o: Common & { readonly rule: string; readonly parse: (value: string) => unknown }): Setting<string> {
  return new Setting(o.env, o.doc, o.shown ?? "(unset)", o.rule, (v) => {
    try {
      o.parse(v);
    } catch (error) {
      throw new ConfigError((error as Error).message);
    }
    return v;
  }, "", maskSecret);
}

/** A setting of its own shape: `parse` throws ConfigError naming the variable. */
export function custom<T>(o: Common & { readonly default: T; readonly shown: string; readonly rule: string; readonly parse: (value: string, env: Env) => T }): Setting<T> {
  return new Setting(o.env, o.doc, o.shown, o.rule, o.parse, o.default);
}

/** A tree of settings: each leaf a Setting, each branch a group of the Config. */
export interface SettingTree {
  readonly [field: string]: Setting<unknown> | SettingTree;
}

/** The Config a tree of settings reads into: each Setting<T> becomes a T. */
export type Resolved<D> = { readonly [K in keyof D]: D[K] extends Setting<infer T> ? T : Resolved<D[K]> };

/** Reads every setting of `tree` from `env` into a frozen object; all bad values in one ConfigError. */
export function readSettings<D extends SettingTree>(tree: D, env: Env): Resolved<D> {
  const problems: string[] = [];
  const walk = (node: SettingTree): object => {
    const out: Record<string, unknown> = {};
    for (const [field, entry] of Object.entries(node)) {
      if (!(entry instanceof Setting)) {
        out[field] = walk(entry);
        continue;
      }
      try {
        out[field] = entry.read(env);
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        problems.push(error.message);
      }
    }
    return Object.freeze(out);
  };
  const config = walk(tree);
  if (problems.length > 0) throw new ConfigError(problems.join("\n"));
  return config as Resolved<D>;
}

/** One setting with its place in the Config ("tokens.issuer"). */
export interface PlacedSetting {
  readonly path: string;
  readonly setting: Setting<unknown>;
}

/** Every setting of `tree` in declaration order. */
export function listSettings(tree: SettingTree, prefix = ""): PlacedSetting[] {
  return Object.entries(tree).flatMap(([field, entry]) =>
    entry instanceof Setting ? [{ path: prefix + field, setting: entry }] : listSettings(entry, `${prefix}${field}.`),
  );
}
