/**
 * The worker side of VERDICT_WORKERS > 1: what a worker process passes to startVerdict (its bus
 * and its shared rate-limit and failed-login counts when there is no Redis, its part in the start-up duties, the summed /metrics, the Health.Check metadata naming it), and
 * the IPC it answers once serving (the primary's metrics collections).
 */
import type { Registry } from "prom-client";
import { createClusterAttemptCounter } from "../bus/attempt-counter-cluster.js";
import { createClusterBus } from "../bus/cluster.js";
import { fleetSyncSettings } from "../bus/rate-limit-sync.js";
import { createClusterRateLimitSync } from "../bus/rate-limit-sync-cluster.js";
import type { Config } from "../config/config.js";
import type { Logger } from "../observability/logger.js";
import { registerWorkerInfo } from "../observability/metrics.js";
import type { StartOptions } from "../app.js";
import type { ClusterMessage } from "./messages.js";
import { WORKER_LISTEN_AFTER_LOAD_ENV, WORKER_SLOT_ENV, isClusterMessage } from "./messages.js";

/** How long a failed-login count waits for the primary (as long as for Redis). */
const LOGIN_ATTEMPT_TIMEOUT_MS = 250;
/** How long a worker's /metrics waits for the primary's sum. */
const METRICS_TIMEOUT_MS = 5_000;
/** Prometheus text format 0.0.4, what prom-client's registries serve. */
const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** One worker's wiring. */
export interface WorkerSetup {
  /** This worker's number, 1..VERDICT_WORKERS (worker 1 runs the start-up duties). */
  readonly slot: number;
  /** What this worker passes to startVerdict. */
  readonly startOptions: Pick<StartOptions, "bus" | "rateLimitSync" | "loginAttempts" | "duties" | "metricsExposition" | "healthMetadata" | "listenAfterLoad">;
  /** Call once the worker serves: it answers the primary's metrics collections from `registry`. */
  started(registry: Registry): void;
}

function send(message: ClusterMessage): void {
  if (process.connected) process.send?.(message, undefined, undefined, () => undefined);
}

/** Sets up this process as worker `slot` of a Verdict primary (read from the environment the primary forked it with). */
export function setUpWorker(config: Config, logger: Logger): WorkerSetup {
  const slot = Number(process.env[WORKER_SLOT_ENV]);
  if (!Number.isInteger(slot) || slot < 1) throw new Error(`a Verdict worker needs ${WORKER_SLOT_ENV} (forked by the primary)`);
  const pending = new Map<number, { resolve: (text: string) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();
  let requests = 0;
  let registry: Registry | undefined;
  let dutiesDone: () => void = () => undefined;
  const duties = new Promise<void>((resolve) => (dutiesDone = resolve));

  process.on("message", (message: unknown) => {
    if (!isClusterMessage(message)) return;
    switch (message.type) {
      case "verdict:duties":
        if (message.done) dutiesDone();
        return;
      case "verdict:metrics-collect":
        if (!registry) return;
        registry.getMetricsAsJSON().then(
          (metrics) => send({ type: "verdict:metrics-part", id: message.id, metrics }),
          (error: Error) => logger.error("collecting this worker's metrics failed", { error }),
        );
        return;
      case "verdict:metrics-response": {
        const request = pending.get(message.id);
        if (!request) return;
        pending.delete(message.id);
        clearTimeout(request.timer);
        if (message.text !== undefined) request.resolve(message.text);
        else request.reject(new Error(`the primary could not sum the workers' metrics: ${message.error ?? "no answer"}`));
        return;
      }
      default:
        return;
    }
  });
  if (slot !== 1) send({ type: "verdict:duties", done: false });

  return {
    slot,
    startOptions: {
      bus: config.redisUrl ? undefined : createClusterBus({ logger: logger.child({ component: "bus" }) }),
      rateLimitSync: config.redisUrl ? undefined : createClusterRateLimitSync({ timeoutMs: fleetSyncSettings(config.rateLimit.syncIntervalMs).timeoutMs }),
      loginAttempts: config.redisUrl ? undefined : (counting) => createClusterAttemptCounter({ timeoutMs: LOGIN_ATTEMPT_TIMEOUT_MS, ...counting }),
      duties: slot === 1 ? { run: true, done: () => send({ type: "verdict:duties", done: true }) } : { run: false, done: duties },
      listenAfterLoad: process.env[WORKER_LISTEN_AFTER_LOAD_ENV] === "1",
      healthMetadata: { "verdict-worker": `${slot}/${process.pid}` },
      metricsExposition: {
        contentType: PROMETHEUS_CONTENT_TYPE,
        metrics: () =>
          new Promise<string>((resolve, reject) => {
            const id = ++requests;
            const timer = setTimeout(() => {
              pending.delete(id);
              reject(new Error("the primary did not answer with the workers' metrics in time"));
            }, METRICS_TIMEOUT_MS);
            pending.set(id, { resolve, reject, timer });
            send({ type: "verdict:metrics-request", id });
          }),
      },
    },
    started(served) {
      registry = served;
      registerWorkerInfo(served, slot, process.pid);
      send({ type: "verdict:started" });
    },
  };
}
