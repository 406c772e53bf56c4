/**
 * The primary process of VERDICT_WORKERS > 1: forks the workers (node:cluster, which shares the
 * gRPC and HTTP ports between them and hands out connections round-robin), restarts a worker that
 * dies (with a backoff) while the others keep serving; when there is no Redis, relays
 * invalidations between the workers, sums their rate-limit counts and counts their failed logins;
 * sums the metrics of every serving worker for /metrics, tells the workers when worker 1 has run
 * the start-up duties, and drains all workers on SIGTERM / SIGINT. It serves nothing itself.
 */
import cluster, { type Worker } from "node:cluster";
import { AggregatorRegistry } from "prom-client";
import { serveClusterAttempts } from "../bus/attempt-counter-cluster.js";
import { relayClusterBus } from "../bus/cluster.js";
import { fleetSyncSettings } from "../bus/rate-limit-sync.js";
import { serveClusterRateLimits } from "../bus/rate-limit-sync-cluster.js";
import type { Logger } from "../observability/logger.js";
import { type ClusterMessage, WORKER_LISTEN_AFTER_LOAD_ENV, WORKER_SLOT_ENV, isClusterMessage } from "./messages.js";

/** Settings of the primary. */
export interface PrimaryOptions {
  /** How many workers to keep running. */
  readonly workers: number;
  /** Node command-line flags the workers get beside the primary's own (workerExecArgv). */
  readonly workerExecArgv: readonly string[];
  /** How long a worker may take to drain after SIGTERM (VERDICT_SHUTDOWN_GRACE_MS). */
  readonly shutdownGraceMs: number;
  /** Relay invalidations between the workers, sum their rate-limit counts, count their failed logins (no Redis configured). */
  readonly relayBus: boolean;
  /** VERDICT_RATE_LIMIT_SYNC_MS: how the workers exchange rate-limit counts with the primary. */
  readonly rateLimitSyncMs: number;
  readonly logger: Logger;
}

/** First restart delay after a crash; doubles per crash in a row, up to RESTART_MAX_MS. */
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 10_000;
/** A worker that served this long before dying starts its slot's backoff afresh. */
const STABLE_AFTER_MS = 30_000;
/** Beyond the grace, how long the primary waits for workers before killing them. */
const KILL_MARGIN_MS = 1_000;
/** How long a metrics collection waits for the workers; late ones are left out of that scrape. */
const COLLECT_TIMEOUT_MS = 2_000;

interface Slot {
  worker: Worker | undefined;
  /** The worker said it serves (it answers metrics collections). */
  serving: boolean;
  startedAt: number;
  crashes: number;
  timer: NodeJS.Timeout | undefined;
}

/** Forks the workers and supervises them until SIGTERM / SIGINT, then exits the process. */
export function runPrimary(options: PrimaryOptions): void {
  const { logger } = options;
  cluster.schedulingPolicy = cluster.SCHED_RR;
  cluster.setupPrimary({ execArgv: [...process.execArgv, ...options.workerExecArgv] });
  const stopRelay = options.relayBus ? relayClusterBus(cluster) : () => undefined;
  const stopRateLimits = options.relayBus ? serveClusterRateLimits(cluster, fleetSyncSettings(options.rateLimitSyncMs)) : () => undefined;
  const stopAttempts = options.relayBus ? serveClusterAttempts(cluster) : () => undefined;
  const slots = new Map<number, Slot>();
  let dutiesDone = false;
  let stopping = false;
  let collections = 0;
  const collecting = new Map<number, { parts: unknown[][]; pending: Set<Worker>; finish: () => void }>();

  /** Every serving worker's metrics summed (prom-client's cluster aggregation), as exposition text. */
  const collect = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const id = ++collections;
      const asked = [...slots.values()].flatMap((s) => (s.serving && s.worker?.isConnected() ? [s.worker] : []));
      const entry = {
        parts: [] as unknown[][],
        pending: new Set(asked),
        finish: () => {
          clearTimeout(timer);
          collecting.delete(id);
          if (entry.pending.size > 0) logger.warn("workers left out of a metrics scrape (no answer in time)", { workers: entry.pending.size });
          AggregatorRegistry.aggregate(entry.parts as never).metrics().then(resolve, reject);
        },
      };
      const timer = setTimeout(entry.finish, COLLECT_TIMEOUT_MS);
      collecting.set(id, entry);
      if (asked.length === 0) return entry.finish();
      for (const worker of asked) send(worker, { type: "verdict:metrics-collect", id });
    });

  const send = (worker: Worker, message: ClusterMessage) => {
    if (worker.isConnected()) worker.send(message, () => undefined);
  };

  const onMessage = (worker: Worker, slot: number, message: ClusterMessage) => {
    switch (message.type) {
      case "verdict:duties":
        if (message.done && slot === 1 && !dutiesDone) {
          dutiesDone = true;
          for (const s of slots.values()) if (s.worker) send(s.worker, { type: "verdict:duties", done: true });
        } else if (!message.done && dutiesDone) {
          send(worker, { type: "verdict:duties", done: true });
        }
        return;
      case "verdict:started":
        slots.get(slot)!.serving = true;
        return;
      case "verdict:metrics-part": {
        const entry = collecting.get(message.id);
        if (!entry || !entry.pending.delete(worker)) return;
        entry.parts.push([...message.metrics]);
        if (entry.pending.size === 0) entry.finish();
        return;
      }
      case "verdict:metrics-request":
        collect().then(
          (text) => send(worker, { type: "verdict:metrics-response", id: message.id, text }),
          (error: Error) => send(worker, { type: "verdict:metrics-response", id: message.id, error: error.message }),
        );
        return;
      case "verdict:metrics-collect":
      case "verdict:metrics-response":
        return;
    }
  };

  const fork = (slot: number) => {
    const state = slots.get(slot)!;
    state.timer = undefined;
    if (stopping) return;
    // Beside serving siblings a new worker listens only once loaded; alone, at once (health answers).
    const siblingsServe = [...slots.values()].some((s) => s !== state && s.serving);
    const worker = cluster.fork({ [WORKER_SLOT_ENV]: String(slot), [WORKER_LISTEN_AFTER_LOAD_ENV]: siblingsServe ? "1" : "" });
    state.worker = worker;
    state.serving = false;
    state.startedAt = performance.now();
    worker.on("message", (message: unknown) => {
      if (isClusterMessage(message)) onMessage(worker, slot, message);
    });
    worker.once("exit", (code, signal) => {
      state.worker = undefined;
      state.serving = false;
      for (const entry of collecting.values()) if (entry.pending.delete(worker) && entry.pending.size === 0) entry.finish();
      if (stopping) return;
      if (performance.now() - state.startedAt >= STABLE_AFTER_MS) state.crashes = 0;
      const delayMs = Math.min(RESTART_MAX_MS, RESTART_MIN_MS * 2 ** state.crashes);
      state.crashes++;
      logger.error("worker exited; restarting it while the others serve", { worker: slot, pid: worker.process.pid, code, signal, restartInMs: delayMs });
      state.timer = setTimeout(() => fork(slot), delayMs);
    });
  };

  for (let slot = 1; slot <= options.workers; slot++) {
    slots.set(slot, { worker: undefined, serving: false, startedAt: 0, crashes: 0, timer: undefined });
    fork(slot);
  }
  logger.info("workers started", { workers: options.workers, bus: options.relayBus ? "cluster" : "redis", execArgv: options.workerExecArgv });

  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info("draining workers", { signal, workers: options.workers });
    const running: Worker[] = [];
    for (const s of slots.values()) {
      clearTimeout(s.timer);
      if (s.worker) running.push(s.worker);
    }
    let failed = false;
    const exits = running.map(
      (worker) =>
        new Promise<void>((resolve) => {
          if (worker.isDead()) return resolve();
          worker.once("exit", (code) => {
            if (code !== 0) failed = true;
            resolve();
          });
          worker.process.kill("SIGTERM");
        }),
    );
    const kill = setTimeout(() => {
      logger.warn("workers still running after the shutdown grace; killing them", { graceMs: options.shutdownGraceMs });
      for (const worker of running) if (!worker.isDead()) worker.process.kill("SIGKILL");
    }, options.shutdownGraceMs + KILL_MARGIN_MS);
    void Promise.all(exits).then(() => {
      clearTimeout(kill);
      stopRelay();
      stopRateLimits();
      stopAttempts();
      process.exit(failed ? 1 : 0);
    });
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}
