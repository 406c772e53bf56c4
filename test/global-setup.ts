/**
 * Runs once before the test files: compiles the tree into dist/ (what `npm run build` does), so that
 * the tests that spawn the real binaries (replica processes, the verdict CLI, the client package)
 * run the code under test, and the compiler runs once per test run instead of once per file. Type
 * errors do not stop the emit (the typecheck is CI's own step); a missing entry point does.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";

const ROOT = path.resolve(import.meta.dirname, "..");

export default async function setup(): Promise<void> {
  const tsc = path.join(ROOT, "node_modules", "typescript", "bin", "tsc");
  await promisify(execFile)(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: ROOT }).catch(() => undefined);
  for (const entry of ["src/main.js", "src/cli/main.js"]) {
    if (!existsSync(path.join(ROOT, "dist", entry))) throw new Error(`the test build did not produce dist/${entry}`);
  }
}
