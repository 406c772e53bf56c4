/**
 * Opening the invalidation bus: Redis pub/sub when a URL is configured, in-process otherwise.
 * Both drivers expose the same counters so metrics are wired once.
 */
import type { Logger } from "../observability/logger.js";
import type { Bus } from "./bus.js";
import { createMemoryBus } from "./memory.js";
import { createRedisBus } from "./redis.js";

/**
 * Live counters of one bus. The object is updated in place, so a metrics collector can keep a
 * reference and read it at scrape time.
 */
export interface BusStats {
  /** Messages handed to the transport successfully. */
  published: number;
  /** Publishes that failed (the change is then picked up by polling). */
  publishFailures: number;
  /** Well-formed messages delivered to this bus's subscribers. */
  received: number;
  /** Messages on the channel that could not be decoded; ignored. */
  malformed: number;
  /** Resubscriptions after a lost connection (always 0 in memory). */
  reconnects: number;
}

/** A bus that also reports its counters. Every driver returns one. */
export interface MeteredBus extends Bus {
  /** Live, read-only view of the counters. */
  readonly stats: Readonly<BusStats>;
}

/** The slice of the service logger the bus drivers use; `console` satisfies it too. */
export type BusLogger = Pick<Logger, "info" | "warn" | "error">;

/** Options for {@link openBus}. */
export interface OpenBusOptions {
  /** `redis://` or `rediss://` URL; when absent or empty, invalidations stay in this process. */
  readonly redisUrl?: string;
  /** Redis channel name (Redis only). */
  readonly channel?: string;
  /** Where the driver reports connection changes and failures (default `console`). */
  readonly logger?: BusLogger;
  /** Called with every error the driver swallows (connection, publish, subscriber handler). */
  readonly onError?: (error: Error) => void;
}

/** Opens the Redis driver when `redisUrl` is set, the in-memory driver otherwise. */
export function openBus(options: OpenBusOptions = {}): MeteredBus {
  const { redisUrl, ...rest } = options;
  if (redisUrl) return createRedisBus({ url: redisUrl, ...rest });
  return createMemoryBus({ logger: rest.logger, onError: rest.onError });
}

export { createMemoryBus } from "./memory.js";
export type { MemoryBusOptions } from "./memory.js";
export { createRedisBus } from "./redis.js";
export type { RedisBusOptions } from "./redis.js";
