/**
 * The effective configuration as `verdict --print-config` prints it: every declared variable with
 * the value Verdict uses, where that value came from (the environment, the preset or the default),
 * secrets masked (passwords, keys, client secrets, a database URL's password).
 */
import { type Config, loadConfig, settings, withPreset } from "./config.js";
import { PRESETS } from "./presets.js";
import { type Env, listSettings } from "./setting.js";

/** One line of the effective configuration. */
export interface EffectiveSetting {
  readonly variable: string;
  /** The value in use, masked when secret (JSON types: string, number, boolean, array, object). */
  readonly value: unknown;
  readonly source: "env" | `preset ${string}` | "default";
}

/** Every setting's effective value and source; throws ConfigError as loadConfig does. */
export function effectiveConfig(env: Env): EffectiveSetting[] {
  const config: Config = loadConfig(env);
  const preset = config.preset === "" ? undefined : PRESETS[config.preset];
  const merged = withPreset(env);
  return listSettings(settings).map(({ setting }) => {
    const explicit = env[setting.env] !== undefined && env[setting.env] !== "";
    const source = explicit ? "env" : preset?.values[setting.env] !== undefined ? (`preset ${config.preset}` as const) : "default";
    return { variable: setting.env, value: setting.show(setting.read(merged)), source };
  });
}

/** The effective configuration as text: `VARIABLE=value  # source`, one per line. */
export function formatEffectiveConfig(lines: readonly EffectiveSetting[]): string {
  const shown = lines.map((l) => `${l.variable}=${typeof l.value === "string" ? l.value : JSON.stringify(l.value)}`);
  const width = Math.max(...shown.map((s) => s.length));
  return shown.map((s, i) => `${s.padEnd(width)}  # ${lines[i].source}`).join("\n") + "\n";
}
