/**
 * Opening the invalidation bus: Redis pub/sub when a URL is configured, in-process otherwise.
 * Both drivers expose the same counters so metrics are wired once.
 */
import type { BusLogger, MeteredBus } from "./bus.js";
import { createMemoryBus } from "./memory.js";

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

/** Opens the Redis driver when `redisUrl` is set (loading ioredis only then), the in-memory driver otherwise. */
export async function openBus(options: OpenBusOptions = {}): Promise<MeteredBus> {
  const { redisUrl, ...rest } = options;
  if (redisUrl) {
    const { createRedisBus } = await import("./redis.js");
    return createRedisBus({ url: redisUrl, ...rest });
  }
  return createMemoryBus({ logger: rest.logger, onError: rest.onError });
}

export type { BusLogger, BusStats, MeteredBus } from "./bus.js";
export { createMemoryBus } from "./memory.js";
export type { MemoryBusOptions } from "./memory.js";
export type { RedisBusOptions } from "./redis.js";
