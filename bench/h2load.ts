/**
 * Drives gRPC unary calls with h2load (Debian package nghttp2-client). Each run also reports the
 * CPU h2load itself used and the CPU time the hypervisor took from this machine's virtual CPUs
 * (steal, from /proc/stat) while it ran: on a 2-core machine both decide how much CPU is left for
 * the server, and a round with much steal measures the host, not the server.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Result of one h2load run. */
export interface LoadResult {
  readonly label: string;
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
  readonly succeeded: number;
  readonly failed: number;
  /** CPU h2load used (user + system), in percent of one core over the run. */
  readonly generatorCpuPercent: number;
  /** CPU time stolen by the hypervisor from all of this machine's CPUs, in percent of one core over the run. */
  readonly stealPercent: number;
}

/** Frames a protobuf message as one gRPC request body (5-byte prefix + bytes). */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(message.length, 1);
  Buffer.from(message).copy(frame, 5);
  return frame;
}

/** Load settings. */
export interface LoadOptions {
  readonly url: string;
  readonly body: Buffer;
  readonly label: string;
  readonly seconds: number;
  readonly clients: number;
  readonly streamsPerClient: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Clock ticks of stolen CPU time, all CPUs together, since boot (Linux; 0 elsewhere). */
function stealTicks(): number {
  try {
    // "cpu  user nice system idle iowait irq softirq steal ...": steal is the eighth value.
    return Number(readFileSync("/proc/stat", "utf8").split("\n", 1)[0].trim().split(/\s+/)[8] ?? 0);
  } catch {
    return 0;
  }
}

const TICKS_PER_SECOND = 100;

/** Seconds of the children's user and system time in the second line `times` prints ("0m1.230s 0m0.410s"). */
function childrenSeconds(timesOutput: string): number {
  const line = timesOutput.trim().split("\n").pop() ?? "";
  let total = 0;
  for (const m of line.matchAll(/(\d+)m([\d.]+)s/g)) total += Number(m[1]) * 60 + Number(m[2]);
  return total;
}

/** Runs h2load against one gRPC method and reads its throughput and latency percentiles. */
export async function h2load(options: LoadOptions): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), "verdict-bench-"));
  try {
    const bodyFile = join(dir, "body.bin");
    const logFile = join(dir, "requests.log");
    writeFileSync(bodyFile, options.body);
    const args = [
      "-c", String(options.clients),
      "-m", String(options.streamsPerClient),
      "-t", "1",
      "-D", String(options.seconds),
      "--warm-up-time", "1",
      "-d", bodyFile,
      "-H", "content-type: application/grpc",
      "-H", "te: trailers",
      "--log-file", logFile,
      options.url,
    ];
    const steal0 = stealTicks();
    const started = performance.now();
    // Under bash so that its `times` tells h2load's CPU: Node gives no child's resource usage.
    const { stdout } = await run("bash", ["-c", 'h2load "$@" && times', "h2load", ...args], { maxBuffer: 16 * 1024 * 1024 });
    const wallSeconds = (performance.now() - started) / 1000;
    const stealPercent = ((stealTicks() - steal0) / TICKS_PER_SECOND / wallSeconds) * 100;
    const generatorCpuPercent = (childrenSeconds(stdout) / wallSeconds) * 100;
    const rps = Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(stdout)?.[1] ?? NaN);
    const m = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed/.exec(stdout);
    const latencies = readFileSync(logFile, "utf8")
      .split("\n")
      .map((l) => l.split("\t"))
      // One line per request of the measured phase: start (us since the epoch), HTTP status, duration (us).
      // h2load writes status 0 for a few calls caught at the phase boundary; only answered calls count.
      .filter((f) => f[1] === "200")
      .map((f) => Number(f[2]) / 1000)
      .sort((a, b) => a - b);
    return {
      label: options.label,
      requestsPerSecond: rps,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      p999Ms: percentile(latencies, 99.9),
      maxMs: latencies.length > 0 ? latencies[latencies.length - 1] : NaN,
      succeeded: Number(m?.[1] ?? 0),
      failed: Number(m?.[2] ?? 0),
      generatorCpuPercent,
      stealPercent,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The median of numbers. */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Formats a result row. */
export function formatRow(r: LoadResult): string {
  const ms = (v: number) => v.toFixed(2).padStart(7);
  return (
    `${r.label.padEnd(28)} ${r.requestsPerSecond.toFixed(0).padStart(8)} calls/s   p50 ${ms(r.p50Ms)}  p99 ${ms(r.p99Ms)}  ` +
    `p99.9 ${ms(r.p999Ms)}  max ${ms(r.maxMs)} ms   ok ${r.succeeded} failed ${r.failed}   ` +
    `h2load ${r.generatorCpuPercent.toFixed(0)}% steal ${r.stealPercent.toFixed(0)}%`
  );
}
