/** Regenerates the settings tables (and the preset table) in README.md from the declaration in src/config/. */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { settings } from "../src/config/config.js";
import { PRESETS } from "../src/config/presets.js";
import { renderPresetTable, renderSettingsTables } from "../src/config/readme-table.js";

const path = join(import.meta.dirname, "../../README.md");
const before = await readFile(path, "utf8");
const after = renderPresetTable(renderSettingsTables(before, settings), PRESETS);
await writeFile(path, after);
console.log(after === before ? "README.md settings tables were up to date" : "README.md settings tables regenerated");
