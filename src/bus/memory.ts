/**
 * The in-process bus, used when no Redis is configured: one replica, so its subscribers are the
 * only receivers. Delivery is asynchronous (a microtask per message) so a publisher never runs
 * subscriber code on its own stack, as with a real transport.
 */
import type { BusLogger, BusStats, Invalidation, MeteredBus } from "./bus.js";

/** Options for {@link createMemoryBus}. */
export interface MemoryBusOptions {
  /** Where a failing subscriber is reported (default `console`). */
  readonly logger?: BusLogger;
  /** Called with every exception a subscriber throws. */
  readonly onError?: (error: Error) => void;
}

/**
 * Creates an in-process bus. `publish` never throws; subscribers receive every message in publish
 * order, after `publish` has returned; an exception in one subscriber is reported and does not
 * stop the others. After `close`, publishes are counted as failures and nothing is delivered.
 */
export function createMemoryBus(options: MemoryBusOptions = {}): MeteredBus {
  const logger = options.logger ?? console;
  const handlers: Array<(message: Invalidation) => void> = [];
  const stats: BusStats = { published: 0, publishFailures: 0, received: 0, malformed: 0, reconnects: 0 };
  let open = true;

  const deliver = (message: Invalidation): void => {
    if (!open) return;
    stats.received++;
    for (const handler of [...handlers]) {
      try {
        handler(message);
      } catch (cause) {
        const error = cause instanceof Error ? cause : new Error(String(cause));
        logger.error("invalidation subscriber failed", { driver: "memory", error: error.message });
        options.onError?.(error);
      }
    }
  };

  return {
    driver: "memory",
    stats,
    get connected() {
      return open;
    },
    publish(message) {
      if (!open) {
        stats.publishFailures++;
        return Promise.resolve();
      }
      stats.published++;
      queueMicrotask(() => deliver(message));
      return Promise.resolve();
    },
    subscribe(handler) {
      handlers.push(handler);
    },
    // One process never loses its own messages, so there is nothing to catch up on.
    onReconnect(_handler) {},
    close() {
      open = false;
      handlers.length = 0;
      return Promise.resolve();
    },
  };
}
