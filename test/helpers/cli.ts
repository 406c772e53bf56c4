/**
 * Runs the compiled `verdict` binary (dist/src/cli/main.js) as a child process, the way a user
 * runs it. dist/ is built by `npm ci` / `npm install` (the prepare script); when the sources are
 * newer than the build, ensureBuilt() rebuilds once (under a lock shared by parallel test files).
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, rmdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (this file is test/helpers/cli.ts, or dist/test/helpers/cli.js once built). */
export const REPO_ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!safeStat(join(dir, "package.json")) || !safeStat(join(dir, "tsconfig.build.json"))) dir = dirname(dir);
  return dir;
})();

/** The compiled CLI entry point. */
export const CLI_MAIN = join(REPO_ROOT, "dist", "src", "cli", "main.js");

function safeStat(path: string) {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function isFresh(): boolean {
  const built = safeStat(CLI_MAIN)?.mtimeMs ?? 0;
  return built > Math.max(newestMtime(join(REPO_ROOT, "src")), newestMtime(join(REPO_ROOT, "gen")), statSync(join(REPO_ROOT, "package.json")).mtimeMs);
}

/** Builds dist/ when it is missing or older than src/, gen/ or package.json. */
export function ensureBuilt(): void {
  if (isFresh()) return;
  const lock = join(tmpdir(), `verdict-build-${createHash("sha256").update(REPO_ROOT).digest("hex").slice(0, 12)}.lock`);
  const deadline = Date.now() + 240_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      const age = Date.now() - (safeStat(lock)?.mtimeMs ?? Date.now());
      if (age > 300_000) rmdirSync(lock);
      if (Date.now() > deadline) throw new Error(`waited too long for another build (${lock})`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
    }
  }
  try {
    if (isFresh()) return;
    const tsc = resolve(REPO_ROOT, "node_modules", "typescript", "bin", "tsc");
    const result = spawnSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: REPO_ROOT, encoding: "utf8" });
    if (result.status !== 0) throw new Error(`npm run build failed:\n${result.stdout}${result.stderr}`);
  } finally {
    rmdirSync(lock);
  }
}

/** What one run of the binary did. */
export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `node dist/src/cli/main.js ...args` with exactly `env` (plus PATH) and optional stdin. */
export function runCli(args: readonly string[], options: { env: Record<string, string>; stdin?: string; cwd?: string }): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
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
    child.on("close", (code) => resolvePromise({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(options.stdin ?? "");
  });
}
