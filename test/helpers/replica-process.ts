/**
 * Runs Verdict replicas as real processes (`node dist/src/main.js`) for multi-replica tests: the
 * build is the one test/global-setup.ts makes once per test run, ports are learnt from the line
 * main.ts prints, logs are kept for failures.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { CHEAP_TEST_ENV } from "./verdict.js";

const ROOT = path.resolve(import.meta.dirname, "../..");

/** A spawned replica. */
export interface ReplicaProcess {
  readonly name: string;
  readonly grpcAddress: string;
  readonly httpBase: string;
  readonly child: ChildProcess;
  /** Everything the process wrote so far (stdout JSON logs and stderr). */
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * The compiled entry point of this test run's build (test/global-setup.ts compiles the tree into
 * dist/ once before the test files run); `tag` names the caller in the error when it is missing.
 */
export async function buildReplica(tag: string): Promise<{ main: string }> {
  const main = path.join(ROOT, "dist", "src", "main.js");
  if (!existsSync(main)) throw new Error(`${tag}: no ${main}; run the tests through vitest (its global setup builds it) or npm run build`);
  return { main };
}

/** Environment every test replica gets: loopback ephemeral ports, cheap argon2, quiet logs. */
export function replicaEnv(extra: Record<string, string>): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "",
    ...CHEAP_TEST_ENV,
    VERDICT_LOG_LEVEL: process.env.VERDICT_TEST_LOG_LEVEL ?? "warn",
    VERDICT_SHUTDOWN_GRACE_MS: "200",
    ...extra,
  };
}

/**
 * Spawns `node main` with exactly `env` and resolves once it prints its ports (the servers are up;
 * the policy may still be loading: health tells). Rejects if it exits first or after 20 s.
 */
export function spawnReplica(name: string, main: string, env: Record<string, string>): Promise<ReplicaProcess> {
  const child = spawn(process.execPath, [main], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr.setEncoding("utf8");
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async (graceMs = 2000) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    let started = false;
    const early = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`replica ${name} exited with ${code} before listening:\n${out}`));
    };
    const timer = setTimeout(() => {
      void stop(0);
      reject(new Error(`replica ${name} did not start in 20 s:\n${out}`));
    }, 20_000);
    child.once("exit", early);
    child.stderr.on("data", (d: string) => {
      out += d;
      const m = started ? null : /verdict: gRPC on ([\d.]+):(\d+), HTTP on ([\d.]+):(\d+)/.exec(out);
      if (!m) return;
      started = true;
      clearTimeout(timer);
      child.off("exit", early);
      resolve({ name, grpcAddress: `${m[1]}:${m[2]}`, httpBase: `http://${m[3]}:${m[4]}`, child, output: () => out, stop });
    });
  });
}

/**
 * Reads one replica's /metrics as a map from series (name plus labels) to value; with `timeoutMs`,
 * rejects when the answer takes longer (a connection node:cluster handed to a worker dying at
 * that instant is never answered).
 */
export async function scrapeMetrics(httpBase: string, timeoutMs?: number): Promise<Map<string, number>> {
  const signal = timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs);
  const text = await (await fetch(`${httpBase}/metrics`, { signal })).text();
  const series = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    series.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return series;
}
