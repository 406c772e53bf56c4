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
import { answerIpcRequests, createIpcRequester } from "./ipc-request.js";
import type { FleetPush, FleetTotals, RateLimitSync } from "./rate-limit-sync.js";

const PUSH = "verdict:rate-limits-push";

/** One exchange's pushes, worker to primary. */
interface PushRequest {
  readonly pushes: readonly FleetPush[];
  readonly minuteSlot: number;
  readonly hourSlot: number;
  readonly nowMs: number;
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
  const requester = createIpcRequester(PUSH, options.channel);
  return {
    via: "the primary process",
    async push(pushes, minuteSlot, hourSlot, nowMs) {
      const request: PushRequest = { pushes, minuteSlot, hourSlot, nowMs };
      return (await requester.request(request, options.timeoutMs)) as FleetTotals;
    },
    async close() {
      requester.close();
    },
  };
}

/**
 * The primary's side: keeps every worker's counts and answers each worker's pushes. Returns a
 * function that stops answering.
 */
export function serveClusterRateLimits(cluster: Pick<Cluster, "on" | "off">, settings: FleetCountsSettings, counts = new FleetCounts(settings)): () => void {
  const stopAnswering = answerIpcRequests(cluster, PUSH, (worker, body) => {
    const { pushes, minuteSlot, hourSlot, nowMs } = body as PushRequest;
    return counts.push(String(worker.id), pushes, minuteSlot, hourSlot, nowMs);
  });
  const onExit = (worker: Worker): void => counts.forget(String(worker.id));
  cluster.on("exit", onExit);
  return () => {
    stopAnswering();
    cluster.off("exit", onExit);
  };
}
