/**
 * The README's settings tables, generated from the declaration. A table sits between
 * `<!-- settings PATH -->` and `<!-- /settings -->`: it lists the settings under PATH of the
 * Config ("tokens"); a marker without a path lists every setting no other marker lists.
 */

import type { Preset } from "./presets.js";
import { listSettings, type PlacedSetting, type SettingTree } from "./setting.js";

const BLOCK = /(<!-- settings(?: ([\w.]+))? -->\n)[\s\S]*?(<!-- \/settings -->)/g;

const cell = (markdown: string): string => markdown.replace(/\|/g, "\\|").replace(/\n/g, " ");

/** A Markdown table of `placed`: variable, default, allowed values, meaning. */
export function settingsTable(placed: readonly PlacedSetting[]): string {
  const rows = placed.map(({ setting: s }) => `| \`${s.env}\` | ${cell(s.shownDefault)} | ${cell(s.allowed)} | ${cell(s.doc)} |`);
  return ["| variable | default | allowed | meaning |", "|---|---|---|---|", ...rows].join("\n") + "\n";
}

const under = (path: string, prefix: string): boolean => path === prefix || path.startsWith(`${prefix}.`);

/** `readme` with every settings block regenerated from `tree`; throws when a block names no setting. */
export function renderSettingsTables(readme: string, tree: SettingTree): string {
  const all = listSettings(tree);
  const prefixes = [...readme.matchAll(BLOCK)].map((m) => m[2]).filter((p): p is string => p !== undefined);
  return readme.replace(BLOCK, (_block, open: string, prefix: string | undefined, close: string) => {
    const placed = prefix === undefined ? all.filter((p) => !prefixes.some((q) => under(p.path, q))) : all.filter((p) => under(p.path, prefix));
    if (placed.length === 0) throw new Error(`README settings block ${JSON.stringify(prefix ?? "")} lists no setting`);
    return `${open}\n${settingsTable(placed)}\n${close}`;
  });
}

const PRESET_BLOCK = /(<!-- presets -->\n)[\s\S]*?(<!-- \/presets -->)/g;

/**
 * `readme` with the block between `<!-- presets -->` and `<!-- /presets -->` regenerated: one row
 * per preset with its purpose, then one row per variable a preset sets with each preset's value
 * ("" where that preset leaves the variable to its default).
 */
export function renderPresetTable(readme: string, presets: Readonly<Record<string, Preset>>): string {
  const names = Object.keys(presets);
  const variables = [...new Set(names.flatMap((n) => Object.keys(presets[n].values)))];
  const header = `| | ${names.map((n) => `\`${n}\``).join(" | ")} |`;
  const rule = `|---|${names.map(() => "---").join("|")}|`;
  const purpose = `| what for | ${names.map((n) => cell(presets[n].doc)).join(" | ")} |`;
  // The variable is not in code quotes: only the settings tables list `VARIABLE` rows.
  const rows = variables.map((v) => `| ${v} | ${names.map((n) => (presets[n].values[v] === undefined ? "" : `\`${presets[n].values[v]}\``)).join(" | ")} |`);
  const table = [header, rule, purpose, ...rows].join("\n") + "\n";
  return readme.replace(PRESET_BLOCK, (_block, open: string, close: string) => `${open}\n${table}\n${close}`);
}
