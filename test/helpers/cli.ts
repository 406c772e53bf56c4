/**
 * Runs the compiled `verdict` binary (dist/src/cli/main.js) as a child process, the way a user
 * runs it; test/global-setup.ts builds dist/ once per test run.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (this file is test/helpers/cli.ts, or dist/test/helpers/cli.js once built). */
export const REPO_ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json")) || !existsSync(join(dir, "tsconfig.build.json"))) dir = dirname(dir);
  return dir;
})();

/** The compiled CLI entry point. */
export const CLI_MAIN = join(REPO_ROOT, "dist", "src", "cli", "main.js");

/** What one run of the binary did. */
export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `node dist/src/cli/main.js ...args` with exactly `env` (plus PATH) and optional stdin. */
export function runCli(args: readonly string[], options: { env: Record<string, string>; stdin?: string; cwd?: string }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_MAIN, ...args], {
      cwd: options.cwd ?? REPO_ROOT,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...options.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(options.stdin ?? "");
  });
}
