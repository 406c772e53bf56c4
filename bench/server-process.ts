/**
 * The bench server in its own process, as Verdict runs in production: `node
 * dist/bench/server-process.js` starts startBenchServer (server.ts) with the environment it is
 * given and prints one line ("bench " and JSON) with its gRPC address and the bench principal's API key. Then, on
 * stdin, "loop\n" answers one line ("bench " and JSON) with the event loop's delay since the last "loop" (max, p99
 * in ms), and SIGTERM closes the server (dropping its schema or data directory) and exits.
 *
 * spawnBenchServer starts it and reads its CPU time and memory from /proc, so the benches measure
 * the server without the bench's own work (h2load log parsing, clients) in its heap or on its loop.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { processCpuMicros, processMemory } from "./proc.js";

const MARK = "bench ";

/** A bench server running in a child process. */
export interface BenchServerProcess {
  /** host:port of the gRPC server. */
  readonly address: string;
  /** A full API key of bench-user (see server.ts). */
  readonly apiKey: string;
  readonly storeDriver: string;
  readonly pid: number;
  /** CPU time (user + system, all threads) the server process has used so far, in microseconds. */
  cpuMicros(): number;
  /** Resident memory now and at its peak, in bytes. */
  memory(): { rss: number; peak: number };
  /** The event loop's delay since the previous call (max and p99, ms). */
  loopDelay(): Promise<{ maxMs: number; p99Ms: number }>;
  close(): Promise<void>;
}

/** Starts the bench server in a child process with `env` added to this process's environment. */
export async function spawnBenchServer(env: Record<string, string> = {}): Promise<BenchServerProcess> {
  const script = fileURLToPath(import.meta.url);
  // BENCH_SERVER_NODE_ARGS: node flags for the server process only (--cpu-prof, --trace-gc, ...).
  const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? "").split(" ").filter(Boolean);
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, script, "--serve"], {
    stdio: ["pipe", "pipe", "inherit"],
    // Given to startBenchServer as its `env` (on top of the bench's own defaults, which it overrides).
    env: { ...process.env, BENCH_SERVER_ENV: JSON.stringify(env) },
  });
  const lines = createInterface({ input: child.stdout! });
  const waiting: ((line: string) => void)[] = [];
  lines.on("line", (line) => {
    // The server's own log lines go to the same stdout: answers are the lines marked "bench ".
    if (line.startsWith(MARK)) waiting.shift()?.(line.slice(MARK.length));
    else process.stderr.write(`${line}\n`);
  });
  const next = () => new Promise<string>((resolve) => waiting.push(resolve));
  const started = await new Promise<{ address: string; apiKey: string; storeDriver: string }>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the bench server exited with ${code}`)));
    void next().then((line) => resolve(JSON.parse(line)));
  });
  child.removeAllListeners("exit");
  return {
    ...started,
    pid: child.pid!,
    cpuMicros: () => processCpuMicros(child.pid!),
    memory: () => processMemory(child.pid!),
    async loopDelay() {
      const answer = next();
      child.stdin!.write("loop\n");
      return JSON.parse(await answer) as { maxMs: number; p99Ms: number };
    },
    close: () =>
      new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

if (process.argv[2] === "--serve") {
  // As main.ts does before anything else: the benches measure the process Verdict runs as.
  const { loadConfig } = await import("../src/config/config.js");
  const { applyV8Flags } = await import("../src/runtime/v8-flags.js");
  const env = JSON.parse(process.env.BENCH_SERVER_ENV ?? "{}") as Record<string, string>;
  const config = loadConfig({ ...process.env, ...env });
  applyV8Flags({ embeddedDatabase: config.databaseUrl === "", heapGrowingPercent: config.heapGrowingPercent });
  const { startBenchServer } = await import("./server.js");
  const server = await startBenchServer(env);
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  createInterface({ input: process.stdin }).on("line", (line) => {
    if (line !== "loop") return;
    console.log(MARK + JSON.stringify({ maxMs: loop.max / 1e6, p99Ms: loop.percentile(99) / 1e6 }));
    loop.reset();
  });
  console.log(MARK + JSON.stringify({ address: server.address, apiKey: server.apiKey, storeDriver: server.storeDriver }));
  process.once("SIGTERM", () => {
    void server.close().then(() => process.exit(0));
  });
}
