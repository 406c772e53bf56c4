/**
 * The bus between the workers of one Verdict process (node:cluster) when no Redis is configured:
 * a worker sends its invalidations to the primary over the IPC channel and the primary hands each
 * one to every worker, the sender included, so every worker hears every commit as replicas do over
 * Redis. The IPC channel is ordered and lossless while it is open; a worker whose channel closes is
 * gone (the primary replaces it and the new worker loads the whole policy).
 */
import type { Cluster, Worker } from "node:cluster";
import type { BusLogger, BusStats, Invalidation, MeteredBus } from "./bus.js";

/** The IPC message carrying one invalidation, in both directions. */
const BUS_MESSAGE = "verdict:bus";

interface BusEnvelope {
  readonly type: typeof BUS_MESSAGE;
  readonly message: Invalidation;
}

function isEnvelope(value: unknown): value is BusEnvelope {
  return typeof value === "object" && value !== null && (value as { type?: unknown }).type === BUS_MESSAGE;
}

/** The IPC side of a worker process (process.send and its "message" events). */
export interface WorkerChannel {
  send?: (message: unknown, sendHandle: undefined, options: undefined, callback: (error: Error | null) => void) => boolean;
  readonly connected?: boolean;
  on(event: "message", listener: (message: unknown) => void): unknown;
  off(event: "message", listener: (message: unknown) => void): unknown;
}

/** Options for {@link createClusterBus}. */
export interface ClusterBusOptions {
  /** Where a failing subscriber is reported (default `console`). */
  readonly logger?: BusLogger;
  /** Called with every exception a subscriber throws or publish failure. */
  readonly onError?: (error: Error) => void;
  /** The worker's IPC channel (default `process`). */
  readonly channel?: WorkerChannel;
}

/**
 * Creates the worker side of the cluster bus. `publish` never throws: without an open IPC channel
 * it counts a failure (polling then delivers the change). Subscribers receive every worker's
 * invalidations, this worker's own included, in the order the primary relayed them; an exception in
 * one subscriber is reported and does not stop the others. `connected` is true while the IPC
 * channel is open. There is no reconnect: a worker that loses its primary exits.
 */
export function createClusterBus(options: ClusterBusOptions = {}): MeteredBus {
  const logger = options.logger ?? console;
  const channel: WorkerChannel = options.channel ?? process;
  const handlers: Array<(message: Invalidation) => void> = [];
  const stats: BusStats = { published: 0, publishFailures: 0, received: 0, malformed: 0, reconnects: 0 };
  let open = true;

  const onMessage = (raw: unknown): void => {
    if (!open || !isEnvelope(raw)) return;
    stats.received++;
    for (const handler of [...handlers]) {
      try {
        handler(raw.message);
      } catch (cause) {
        const error = cause instanceof Error ? cause : new Error(String(cause));
        logger.error("invalidation subscriber failed", { driver: "cluster", error: error.message });
        options.onError?.(error);
      }
    }
  };
  channel.on("message", onMessage);

  return {
    driver: "cluster",
    stats,
    get connected() {
      return open && channel.connected === true;
    },
    publish(message) {
      const envelope: BusEnvelope = { type: BUS_MESSAGE, message: { version: message.version, changes: message.changes } };
      if (!open || !channel.send || channel.connected !== true) {
        stats.publishFailures++;
        return Promise.resolve();
      }
      return new Promise((resolve) => {
        channel.send!(envelope, undefined, undefined, (error) => {
          if (error) {
            stats.publishFailures++;
            logger.warn("cluster bus publish failed; workers will catch up by polling", { driver: "cluster", version: message.version, error: error.message });
            options.onError?.(error);
          } else {
            stats.published++;
          }
          resolve();
        });
      });
    },
    subscribe(handler) {
      handlers.push(handler);
    },
    // The IPC channel does not reconnect: a worker that loses it exits and is replaced.
    onReconnect(_handler) {},
    close() {
      open = false;
      handlers.length = 0;
      channel.off("message", onMessage);
      return Promise.resolve();
    },
  };
}

/**
 * The primary's side: relays every invalidation a worker sends to every connected worker (the
 * sender included). Returns a function that stops relaying.
 */
export function relayClusterBus(cluster: Pick<Cluster, "on" | "off" | "workers">): () => void {
  const relay = (_from: Worker, raw: unknown): void => {
    if (!isEnvelope(raw)) return;
    for (const worker of Object.values(cluster.workers ?? {})) {
      // A worker that exits meanwhile misses nothing that matters: its replacement loads everything.
      if (worker?.isConnected()) worker.send(raw, () => undefined);
    }
  };
  cluster.on("message", relay);
  return () => {
    cluster.off("message", relay);
  };
}
