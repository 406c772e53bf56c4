/**
 * Starts bench/noop-server.js in a child process and reads its CPU time and memory from /proc, so a
 * bench can put the bare grpc-js ceiling beside Verdict in the same run.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** A running no-op server process. */
export interface NoopServer {
  /** host:port it answers on. */
  readonly address: string;
  /** CPU time (user + system) the process has used so far, in microseconds. */
  cpuMicros(): number;
  /** Resident memory of the process, in bytes. */
  rssBytes(): number;
  close(): Promise<void>;
}

const TICKS_PER_SECOND = 100;

/** Starts the no-op server answering `paths` (gRPC method paths such as "/pkg.Service/Method"). */
export async function startNoopServer(paths: readonly string[]): Promise<NoopServer> {
  const script = fileURLToPath(new URL("./noop-server.js", import.meta.url));
  const child: ChildProcess = spawn(process.execPath, [script, ...paths], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the no-op server exited with ${code}`)));
    createInterface({ input: child.stdout! }).once("line", (line) => resolve((JSON.parse(line) as { port: number }).port));
  });
  const stat = () => {
    const line = readFileSync(`/proc/${child.pid}/stat`, "utf8");
    return line.slice(line.lastIndexOf(")") + 2).split(" ");
  };
  return {
    address: `127.0.0.1:${port}`,
    cpuMicros() {
      // Fields after the command name: state is [0], utime [11], stime [12] (in clock ticks).
      const f = stat();
      return ((Number(f[11]) + Number(f[12])) * 1e6) / TICKS_PER_SECOND;
    },
    rssBytes() {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
      return Number(m?.[1] ?? 0) * 1024;
    },
    close: () =>
      new Promise<void>((resolve) => {
        child.removeAllListeners("exit");
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}
