/**
 * The exchange of rate-limit counts between the workers of one Verdict process (VERDICT_WORKERS > 1)
 * when no Redis is configured: the primary plays Redis's part. Every exchange a worker sends the
 * primary, over the IPC channel, what it admitted since its last push; the primary adds it to the
 * counts it keeps for all workers (fleet-counts.ts) and answers the totals and the number of live
 * workers, so each worker counts the others' units exactly as it counts other replicas' through
 * Redis (rate-limit-fleet.ts). Nothing here runs on the Check path.
 */
import type { Cluster, Worker } from "node:cluster";
import type { WorkerChannel } from "./cluster.js";
import { FleetCounts, type FleetCountsSettings } from "./fleet-counts.js";
import type { FleetPush, FleetTotals, RateLimitSync } from "./rate-limit-sync.js";

const PUSH = "verdict:rate-limits-push";
const TOTALS = "verdict:rate-limits-totals";

/** Worker to primary: one exchange's pushes. */
interface PushEnvelope {
  readonly type: typeof PUSH;
  readonly id: number;
  readonly pushes: readonly FleetPush[];
  readonly minuteSlot: number;
  readonly hourSlot: number;
  readonly nowMs: number;
}

/** Primary to the worker that pushed: the answer. */
interface TotalsEnvelope extends FleetTotals {
  readonly type: typeof TOTALS;
  readonly id: number;
}

function isPush(value: unknown): value is PushEnvelope {
  return typeof value === "object" && value !== null && (value as { type?: unknown }).type === PUSH;
}

function isTotals(value: unknown): value is TotalsEnvelope {
  return typeof value === "object" && value !== null && (value as { type?: unknown }).type === TOTALS;
}

/** Options of createClusterRateLimitSync. */
export interface ClusterRateLimitSyncOptions {
  /** Longest wait for the primary's answer. */
  readonly timeoutMs: number;
  /** The worker's IPC channel (default `process`). */
  readonly channel?: WorkerChannel;
}

/**
 * The worker's side: a push is one IPC message to the primary and its answer. Rejects when the
 * channel is closed or the primary does not answer within `timeoutMs` (the exchange then treats
 * it as it treats Redis being unreachable).
 */
export function createClusterRateLimitSync(options: ClusterRateLimitSyncOptions): RateLimitSync {
  const channel: WorkerChannel = options.channel ?? process;
  const pending = new Map<number, { resolve: (totals: FleetTotals) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();
  let pushes = 0;
  const onMessage = (raw: unknown): void => {
    if (!isTotals(raw)) return;
    const waiting = pending.get(raw.id);
    if (!waiting) return;
    pending.delete(raw.id);
    clearTimeout(waiting.timer);
    waiting.resolve({ replicas: raw.replicas, totals: raw.totals });
  };
  channel.on("message", onMessage);

  return {
    via: "the primary process",
    push(batch, minuteSlot, hourSlot, nowMs) {
      return new Promise((resolve, reject) => {
        if (!channel.send || channel.connected !== true) return reject(new Error("no IPC channel to the primary process"));
        const id = ++pushes;
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`the primary process did not answer a rate-limit push within ${options.timeoutMs} ms`));
        }, options.timeoutMs);
        pending.set(id, { resolve, reject, timer });
        const envelope: PushEnvelope = { type: PUSH, id, pushes: batch, minuteSlot, hourSlot, nowMs };
        channel.send(envelope, undefined, undefined, (error) => {
          if (!error || !pending.delete(id)) return;
          clearTimeout(timer);
          reject(error);
        });
      });
    },
    async close() {
      channel.off("message", onMessage);
      for (const { reject, timer } of pending.values()) {
        clearTimeout(timer);
        reject(new Error("rate-limit exchange closed"));
      }
      pending.clear();
    },
  };
}

/**
 * The primary's side: keeps every worker's counts and answers each worker's pushes. Returns a
 * function that stops answering.
 */
export function serveClusterRateLimits(cluster: Pick<Cluster, "on" | "off">, settings: FleetCountsSettings, counts = new FleetCounts(settings)): () => void {
  const onMessage = (worker: Worker, raw: unknown): void => {
    if (!isPush(raw)) return;
    const answer = counts.push(String(worker.id), raw.pushes, raw.minuteSlot, raw.hourSlot, raw.nowMs);
    const envelope: TotalsEnvelope = { type: TOTALS, id: raw.id, replicas: answer.replicas, totals: answer.totals };
    if (worker.isConnected()) worker.send(envelope, () => undefined);
  };
  const onExit = (worker: Worker): void => counts.forget(String(worker.id));
  cluster.on("message", onMessage);
  cluster.on("exit", onExit);
  return () => {
    cluster.off("message", onMessage);
    cluster.off("exit", onExit);
  };
}
