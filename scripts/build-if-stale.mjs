// `npm start`'s prestart: compiles TypeScript (tsconfig.build.json) only when a source is newer
// than the last build, so a restart starts at once. Plain JavaScript: it runs before any build.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";

const root = join(import.meta.dirname, "..");
const output = join(root, "dist/src/main.js");
const inputs = ["src", "gen", "bench", "scripts", "test/helpers", "test/types", "tsconfig.json", "tsconfig.build.json", "package.json"];

/** The newest modification time under `path` (a file or a directory), 0 when it does not exist. */
function newest(path) {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    return 0;
  }
  if (!stat.isDirectory()) return stat.mtimeMs;
  return readdirSync(path).reduce((max, name) => Math.max(max, newest(join(path, name))), stat.mtimeMs);
}

const built = newest(output);
const changed = Math.max(...inputs.map((p) => newest(join(root, p))));
if (built === 0 || changed > built) {
  process.stderr.write(built === 0 ? "verdict: building (first start)\n" : "verdict: sources changed since the last build; rebuilding\n");
  const tsc = spawnSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.build.json")], { stdio: "inherit" });
  process.exit(tsc.status ?? 1);
}
