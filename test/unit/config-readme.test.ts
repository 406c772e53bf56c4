/**
 * The README's settings tables are generated from the declaration in src/config/config.ts: this
 * fails when they differ (run `npm run docs:config`), so the docs cannot drift from the code.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { settings } from "../../src/config/config.js";
import { PRESETS } from "../../src/config/presets.js";
import { renderPresetTable, renderSettingsTables } from "../../src/config/readme-table.js";
import { listSettings, text, int } from "../../src/config/setting.js";

const README = join(import.meta.dirname, "../../README.md");

describe("README settings tables", () => {
  it("match the declaration (regenerate with npm run docs:config)", async () => {
    const readme = await readFile(README, "utf8");
    expect(readme, "README.md settings tables differ from src/config/config.ts: run npm run docs:config").toBe(renderSettingsTables(readme, settings));
  });

  it("the preset table matches the presets (regenerate with npm run docs:config)", async () => {
    const readme = await readFile(README, "utf8");
    expect(readme).toContain("<!-- presets -->");
    expect(readme, "README.md preset table differs from src/config/presets.ts: run npm run docs:config").toBe(renderPresetTable(readme, PRESETS));
  });

  it("list every declared variable exactly once", async () => {
    const readme = await readFile(README, "utf8");
    for (const { setting } of listSettings(settings)) {
      const rows = readme.split("\n").filter((line) => line.startsWith(`| \`${setting.env}\` |`));
      expect(rows, setting.env).toHaveLength(1);
    }
  });

  it("every variable is declared once", () => {
    const names = listSettings(settings).map((p) => p.setting.env);
    expect(new Set(names).size).toBe(names.length);
  });

  it("a pathed block lists its subtree, the bare block the rest; a stale table is replaced", () => {
    const tree = { a: int({ env: "A", default: 1, min: 0, max: 9, doc: "the a" }), sub: { b: text({ env: "B", default: "", doc: "pipe | inside" }) } };
    const readme = "x\n<!-- settings -->\nstale\n<!-- /settings -->\ny\n<!-- settings sub -->\n<!-- /settings -->\n";
    expect(renderSettingsTables(readme, tree)).toBe(
      "x\n<!-- settings -->\n\n| variable | default | allowed | meaning |\n|---|---|---|---|\n| `A` | `1` | 0 to 9 | the a |\n\n<!-- /settings -->\n" +
        "y\n<!-- settings sub -->\n\n| variable | default | allowed | meaning |\n|---|---|---|---|\n| `B` | (unset) | text | pipe \\| inside |\n\n<!-- /settings -->\n",
    );
    expect(() => renderSettingsTables("<!-- settings nowhere -->\n<!-- /settings -->", tree)).toThrow(/nowhere/);
  });
});
