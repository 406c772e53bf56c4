/**
 * Login attempts counted by the primary of VERDICT_WORKERS > 1 when no Redis is configured, so that
 * N workers allow the guesses of one, not N times them. As with Redis (attempt-counter-redis.ts),
 * every attempt asks once: a worker sends the primary each take, give-back and clear over the IPC
 * channel, and the primary applies it to one in-memory counter for all its workers.
 *
 * Primary not answering in time (a starved machine; a primary that is gone takes its workers with
 * it): fail open counts on this worker (the fallback counter), fail closed refuses the attempt for
 * a second, as the Redis driver does.
 */
import type { Cluster } from "node:cluster";
import { type AttemptCount, type AttemptCounter, type ClosableAttemptCounter, createMemoryAttemptCounter, takeWhileUnreachable } from "../authn/attempt-counter.js";
import type { WorkerChannel } from "./cluster.js";
import { answerIpcRequests, createIpcRequester } from "./ipc-request.js";

const ATTEMPT = "verdict:login-attempt";

type AttemptRequest =
  | { readonly op: "take"; readonly key: string; readonly limit: number; readonly windowMs: number; readonly nowMs: number }
  | { readonly op: "giveBack"; readonly key: string; readonly nowMs: number }
  | { readonly op: "clear"; readonly key: string };

/** Options of createClusterAttemptCounter. */
export interface ClusterAttemptCounterOptions {
  /** Longest wait for the primary per call. */
  readonly timeoutMs: number;
  /** Where to count while the primary does not answer; undefined: refuse attempts (fail closed). */
  readonly fallback: AttemptCounter | undefined;
  /** Called on every call the primary did not answer. */
  readonly onFailure?: (error: unknown) => void;
  /** The worker's IPC channel (default `process`). */
  readonly channel?: WorkerChannel;
}

/** The worker's side: every call is one request to the primary. */
export function createClusterAttemptCounter(options: ClusterAttemptCounterOptions): ClosableAttemptCounter {
  const requester = createIpcRequester(ATTEMPT, options.channel);
  const ask = (request: AttemptRequest) => requester.request(request, options.timeoutMs);
  const failed = (error: unknown) => options.onFailure?.(error);
  return {
    async take(key, limit, windowMs, nowMs): Promise<AttemptCount> {
      try {
        return (await ask({ op: "take", key, limit, windowMs, nowMs })) as AttemptCount;
      } catch (error) {
        failed(error);
        return takeWhileUnreachable(options.fallback, key, limit, windowMs, nowMs);
      }
    },
    async giveBack(key, nowMs) {
      try {
        await ask({ op: "giveBack", key, nowMs });
      } catch (error) {
        failed(error);
      }
      await options.fallback?.giveBack(key, nowMs);
    },
    async clear(key) {
      try {
        await ask({ op: "clear", key });
      } catch (error) {
        failed(error);
      }
      await options.fallback?.clear(key);
    },
    async close() {
      requester.close();
    },
  };
}

/**
 * The primary's side: one counter (default in memory) for every worker's attempts. Returns a
 * function that stops answering.
 */
export function serveClusterAttempts(cluster: Pick<Cluster, "on" | "off">, counter: AttemptCounter = createMemoryAttemptCounter()): () => void {
  return answerIpcRequests(cluster, ATTEMPT, async (_worker, body) => {
    const request = body as AttemptRequest;
    switch (request.op) {
      case "take":
        return counter.take(request.key, request.limit, request.windowMs, request.nowMs);
      case "giveBack":
        return counter.giveBack(request.key, request.nowMs).then(() => null);
      case "clear":
        return counter.clear(request.key).then(() => null);
    }
  });
}
