/**
 * The Redis connection of a background script runner (rate-limit sharing, login attempts): no
 * offline queue and no retries per call, so an outage fails each call fast; reconnects by itself.
 */
import { Redis } from "ioredis";

/** A script runner's connection and the end of its first connection attempt. */
export interface RedisScriptConnection {
  readonly redis: Redis;
  /** Settles when the first connection is ready, failed or timed out (never rejects). */
  readonly firstAttempt: Promise<void>;
}

/** Opens the connection at once; calls made before the first attempt ends should await firstAttempt. */
export function createRedisScriptConnection(url: string, connectionName: string, timeoutMs: number): RedisScriptConnection {
  const redis = new Redis(url, {
    connectionName,
    enableOfflineQueue: false,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
  });
  // Errors surface as rejected calls; the connection retries by itself.
  redis.on("error", () => undefined);
  const firstAttempt = new Promise<void>((resolve) => {
    const settle = () => resolve();
    redis.once("ready", settle);
    redis.once("error", settle);
    redis.once("end", settle);
    setTimeout(settle, timeoutMs).unref();
  });
  return { redis, firstAttempt };
}
