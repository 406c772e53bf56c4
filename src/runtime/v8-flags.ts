/**
 * V8 settings a serving process applies once at start, before it allocates much (main.ts; the
 * benches' server process does the same so that they measure what runs).
 *
 * - The embedded database is Postgres in WebAssembly: compiled by Liftoff only (no TurboFan
 *   tier-up) it holds about 45 MB less and starts about twice as fast, with no measurable cost on
 *   its queries (bench/RESULTS.md). Set before PGlite compiles its module; no other WebAssembly runs.
 * - The old generation grows by at most `heapGrowingPercent` between full collections. Under load
 *   node:http2 promotes about 1 to 2 KiB per call to the old generation (so does a bare grpc-js
 *   server); with V8's own heuristic the old generation of a 17 MiB live heap grows to about 70 MiB
 *   before a full collection, whose pause then spends most of its time clearing the external strings
 *   (HTTP/2 header values) and evacuating what accumulated: 20 to 35 ms on this kind of machine.
 *   Collecting at 1.5x the live heap makes each pause a fraction of that, for about 5% more CPU
 *   per call (bench/RESULTS.md, issue 13). 0 leaves V8's heuristic.
 *
 * Workers (VERDICT_WORKERS > 1) may also get V8's single-threaded garbage collector, as a
 * command-line flag of the forked processes (workerExecArgv): V8 cannot switch it at run time (it
 * aborts in the next marking). Each process has a pool of helper threads for parallel scavenges and
 * concurrent marking; when every core already runs a worker's event loop, those threads have no
 * core of their own: they take turns with the other workers, and a scavenge waits for helpers that
 * are not running. Measured with two workers on two cores, in three runs: 6 to 18% more Checks per
 * second, 12% less CPU per call, and a lower p99 (bench/RESULTS.md, "Issue 13, third round").
 */
import { setFlagsFromString } from "node:v8";

/** What the flags depend on. */
export interface V8FlagSettings {
  readonly embeddedDatabase: boolean;
  readonly heapGrowingPercent: number;
}

/** The flags for `settings`, as V8 command-line flags. */
export function v8Flags(settings: V8FlagSettings): string[] {
  const flags: string[] = [];
  if (settings.embeddedDatabase) flags.push("--liftoff-only");
  if (settings.heapGrowingPercent > 0) flags.push(`--heap-growing-percent=${settings.heapGrowingPercent}`);
  return flags;
}

/** VERDICT_WORKER_GC: how the workers collect garbage. */
export type WorkerGc = "auto" | "single-threaded" | "parallel";

/**
 * Whether the workers run V8's single-threaded garbage collector: always or never when told so;
 * with `auto`, when there are at least as many workers as CPUs the process may use.
 */
export function singleThreadedWorkerGc(mode: WorkerGc, workers: number, cpus: number): boolean {
  if (mode === "auto") return workers >= cpus;
  return mode === "single-threaded";
}

/** The Node command-line flags the primary adds to its own when it forks the workers. */
export function workerExecArgv(mode: WorkerGc, workers: number, cpus: number): string[] {
  return singleThreadedWorkerGc(mode, workers, cpus) ? ["--single-threaded-gc"] : [];
}

/** Applies the flags to this process's V8. */
export function applyV8Flags(settings: V8FlagSettings): void {
  for (const flag of v8Flags(settings)) setFlagsFromString(flag);
}
