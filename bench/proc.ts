/**
 * CPU time and memory of another process, read from /proc (Linux), for benches that measure a
 * server running in its own process.
 */
import { readFileSync } from "node:fs";

const TICKS_PER_SECOND = 100;

/** CPU time (user + system, all threads) process `pid` has used so far, in microseconds. */
export function processCpuMicros(pid: number): number {
  const line = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name: state is [0], utime [11], stime [12] (in clock ticks).
  const f = line.slice(line.lastIndexOf(")") + 2).split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1e6) / TICKS_PER_SECOND;
}

/** Resident memory of process `pid` now and at its peak (VmHWM), in bytes. */
export function processMemory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
  return { rss: kib("VmRSS"), peak: kib("VmHWM") };
}

/** The children of process `pid` (a cluster primary's workers), by pid. */
export function childPids(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
}

/** CPU time of process `pid` and of each of its children, in that order, in microseconds. */
export function processTreeCpuMicros(pid: number): number[] {
  return [pid, ...childPids(pid)].map(processCpuMicros);
}
