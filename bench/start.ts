/**
 * bench/start: how long Verdict takes to answer /readyz and how much memory it holds, started as
 * a user starts it (`node dist/src/main.js`, and `npm start` for a restart), on the embedded
 * database (a fresh data directory: first start, then restarts) and, with DATABASE_URL, on
 * Postgres side by side. Memory is the process's RSS (VmRSS) after IDLE seconds idle and its peak
 * (VmHWM), read from /proc.
 *
 *   npm run build && node dist/bench/start.js        (ROUNDS=3 IDLE=5; DATABASE_URL=... adds Postgres;
 *                                                     MAIN=other/dist/src/main.js NPM=0 starts another build)
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { dropSchema, freshSchema } from "../test/helpers/verdict.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const IDLE_SECONDS = Number(process.env.IDLE ?? 5);
const HTTP_PORT = Number(process.env.HTTP_PORT ?? 18_480);
/** The entry point to start (another build's, to compare side by side); npm start always runs this checkout's. */
const MAIN = process.env.MAIN ?? path.join(ROOT, "dist/src/main.js");
const NPM = process.env.NPM !== "0";

interface Run {
  readonly label: string;
  readonly readyMs: number;
  readonly rssMiB: number;
  readonly peakMiB: number;
}

function memory(pid: number): { rssMiB: number; peakMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)![1]);
  return { rssMiB: Math.round(kib("VmRSS") / 1024), peakMiB: Math.round(kib("VmHWM") / 1024) };
}

async function ready(deadline: number): Promise<void> {
  while (performance.now() < deadline) {
    const ok = await fetch(`http://127.0.0.1:${HTTP_PORT}/readyz`).then((r) => r.ok, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("not ready in time");
}

/** The pid of the node process serving: `npm start` runs it as a descendant of npm. */
function serverPid(child: ChildProcess): number {
  const parents = new Map<number, number>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      parents.set(Number(name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      continue;
    }
  }
  const descends = (pid: number): boolean => pid === child.pid || (pid > 1 && parents.has(pid) && descends(parents.get(pid)!));
  for (const pid of parents.keys()) {
    if (!descends(pid)) continue;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    if (cmdline.some((arg) => arg.endsWith("dist/src/main.js")) && path.basename(cmdline[0]).startsWith("node")) return pid;
  }
  throw new Error("cannot find the server process under npm");
}

async function start(label: string, env: Record<string, string>, viaNpm = false): Promise<Run> {
  const started = performance.now();
  const child = viaNpm
    ? spawn("npm", ["start", "--silent"], { cwd: ROOT, env: { ...process.env, ...env }, stdio: "ignore" })
    : spawn(process.execPath, [MAIN], { cwd: ROOT, env: { ...process.env, ...env }, stdio: "ignore" });
  try {
    await ready(started + 180_000);
    const readyMs = performance.now() - started;
    await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
    const pid = viaNpm ? serverPid(child) : child.pid!;
    const run = { label, readyMs, ...memory(pid) };
    console.log(`${label.padEnd(40)} ready in ${(readyMs / 1000).toFixed(2)} s, RSS ${run.rssMiB} MiB idle, peak ${run.peakMiB} MiB`);
    process.kill(pid, "SIGTERM");
    return run;
  } finally {
    await new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once("exit", () => resolve());
      setTimeout(() => {
        child.kill("SIGKILL");
        resolve();
      }, 15_000);
    });
  }
}

const common = {
  VERDICT_GRPC_ADDR: "127.0.0.1:0",
  VERDICT_HTTP_ADDR: `127.0.0.1:${HTTP_PORT}`,
  VERDICT_ROOT_PASSWORD: "bench-root-password",
  VERDICT_LOG_LEVEL: "warn",
  DATABASE_URL: "",
};
const dataDir = mkdtempSync(path.join(tmpdir(), "verdict-bench-start-"));
console.log(`bench/start: ${MAIN}, ${ROUNDS} restarts, RSS read after ${IDLE_SECONDS} s idle`);
try {
  await start("embedded, first start (new data dir)", { ...common, VERDICT_DATA_DIR: dataDir });
  for (let i = 1; i <= ROUNDS; i++) await start(`embedded, restart ${i}`, { ...common, VERDICT_DATA_DIR: dataDir });
  if (NPM) for (let i = 1; i <= ROUNDS; i++) await start(`embedded, restart ${i} with npm start`, { ...common, VERDICT_DATA_DIR: dataDir }, true);
  if (process.env.DATABASE_URL) {
    const schema = freshSchema();
    const pg = { ...common, DATABASE_URL: process.env.DATABASE_URL, VERDICT_DATABASE_SCHEMA: schema };
    try {
      await start("postgres, first start (new schema)", pg);
      for (let i = 1; i <= ROUNDS; i++) await start(`postgres, restart ${i}`, pg);
    } finally {
      await dropSchema(schema);
    }
  }
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
