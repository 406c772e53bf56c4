/**
 * Drives gRPC unary calls with h2load (Debian package nghttp2-client), which costs a few percent
 * of a core, so the server under test, not the load generator, is what is measured.
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

/** Runs h2load against one gRPC method and reads its throughput and latency percentiles. */
export async function h2load(options: LoadOptions): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), "verdict-bench-"));
  try {
    const bodyFile = join(dir, "body.bin");
    const logFile = join(dir, "requests.log");
    writeFileSync(bodyFile, options.body);
    const { stdout } = await run(
      "h2load",
      [
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
      ],
      { maxBuffer: 16 * 1024 * 1024 },
    );
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
    `p99.9 ${ms(r.p999Ms)}  max ${ms(r.maxMs)} ms   ok ${r.succeeded} failed ${r.failed}`
  );
}
