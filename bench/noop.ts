/**
 * Starts bench/noop-server.js in a child process and reads its CPU time and memory from /proc, so a
 * bench can put the bare grpc-js ceiling beside Verdict in the same run (with `workers` > 1, as
 * node:cluster workers sharing one port, the way VERDICT_WORKERS runs Verdict).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { processMemory, processTreeCpuMicros } from "./proc.js";

/** A running no-op server process. */
export interface NoopServer {
  /** The process (with workers: their primary). */
  readonly pid: number;
  /** host:port it answers on. */
  readonly address: string;
  /** CPU time (user + system) the process (with workers: the primary and all workers) has used so far, in microseconds. */
  cpuMicros(): number;
  /** Resident memory of the process, in bytes. */
  rssBytes(): number;
  close(): Promise<void>;
}

/** Starts the no-op server answering `paths` (gRPC method paths such as "/pkg.Service/Method"). */
export async function startNoopServer(paths: readonly string[], workers = 1): Promise<NoopServer> {
  const script = fileURLToPath(new URL("./noop-server.js", import.meta.url));
  const child: ChildProcess = spawn(process.execPath, [script, ...paths], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, NOOP_WORKERS: String(workers) },
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the no-op server exited with ${code}`)));
    createInterface({ input: child.stdout! }).once("line", (line) => resolve((JSON.parse(line) as { port: number }).port));
  });
  return {
    pid: child.pid!,
    address: `127.0.0.1:${port}`,
    cpuMicros: () => processTreeCpuMicros(child.pid!).reduce((a, b) => a + b, 0),
    rssBytes: () => processMemory(child.pid!).rss,
    close: () =>
      new Promise<void>((resolve) => {
        child.removeAllListeners("exit");
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}
