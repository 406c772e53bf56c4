/**
 * The Redis pub/sub bus: every replica publishes its commits on one channel and subscribes to it.
 *
 * Wire format (JSON, compact): `{"v":<version>,"c":[[kind,id],...]}`. An entry carries a third
 * element, its own version, only when that differs from `v` (a mutation's entries normally all
 * share its version), so the round trip is lossless.
 *
 * Two connections: a publisher that fails fast while Redis is away (no offline queue, a command
 * timeout), and a subscriber that reconnects forever with a capped backoff and subscribes again on
 * every connect, then tells the receiver to catch up from the change log.
 */
import { setTimeout as delay } from "node:timers/promises";
import { Redis } from "ioredis";
import type { RedisOptions } from "ioredis";
import type { EntityKind } from "../core/change-log.js";
import type { BusLogger, BusStats, Invalidation, MeteredBus } from "./bus.js";

/** Options for {@link createRedisBus}. */
export interface RedisBusOptions {
  /** `redis://` or `rediss://` URL. */
  readonly url: string;
  /** Channel shared by every replica of one deployment. */
  readonly channel?: string;
  /**
   * Prefix of the CLIENT SETNAME of both connections (`<name>:pub`, `<name>:sub`), so operators
   * can tell them apart in CLIENT LIST.
   */
  readonly connectionName?: string;
  /** Where connection changes and failures are reported (default `console`). */
  readonly logger?: BusLogger;
  /** Called with every error the bus swallows (connection, publish, subscriber handler). */
  readonly onError?: (error: Error) => void;
}

const DEFAULT_CHANNEL = "verdict:invalidations";
const DEFAULT_CONNECTION_NAME = "verdict:bus";
const MAX_RECONNECT_DELAY_MS = 2000;
const PUBLISH_TIMEOUT_MS = 1000;

/** Every entity kind, typed so that a kind added to the store must be added here too. */
const ENTITY_KINDS: Record<EntityKind, true> = {
  tenant: true,
  user: true,
  role: true,
  binding: true,
  api_key: true,
  session: true,
  signing_key: true,
  rate_limit: true,
};

type WireEntry = [EntityKind, string] | [EntityKind, string, number];

function encode(message: Invalidation): string {
  const c: WireEntry[] = message.changes.map((entry) =>
    entry.version === message.version ? [entry.kind, entry.id] : [entry.kind, entry.id, entry.version],
  );
  return JSON.stringify({ v: message.version, c });
}

function isVersion(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** Decodes one message, or returns undefined for anything that is not exactly the wire format. */
function decode(raw: string): Invalidation | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return undefined;
  const { v, c } = parsed as { v?: unknown; c?: unknown };
  if (!isVersion(v) || !Array.isArray(c)) return undefined;
  const changes: Invalidation["changes"][number][] = [];
  for (const entry of c) {
    if (!Array.isArray(entry) || entry.length < 2 || entry.length > 3) return undefined;
    const [kind, id, version = v] = entry as unknown[];
    if (typeof kind !== "string" || !Object.hasOwn(ENTITY_KINDS, kind)) return undefined;
    if (typeof id !== "string" || !isVersion(version)) return undefined;
    changes.push({ version, kind: kind as EntityKind, id });
  }
  return { version: v, changes };
}

function asError(cause: unknown): Error {
  return cause instanceof Error ? cause : new Error(String(cause));
}

/**
 * Creates a Redis bus and starts connecting at once. Nothing it does throws after creation:
 * `publish` resolves even when Redis is away (counting a failure), malformed messages on the
 * channel are counted and ignored, connection errors are reported and retried forever with a
 * backoff of min(attempt × 100, 2000) ms. `connected` is true while the subscriber is subscribed.
 * `onReconnect` handlers run after each resubscription that follows a lost connection, never on
 * the first subscription. Throws only for a URL that is not `redis:` or `rediss:`.
 */
export function createRedisBus(options: RedisBusOptions): MeteredBus {
  const protocol = new URL(options.url).protocol;
  if (protocol !== "redis:" && protocol !== "rediss:") {
    throw new Error(`redis bus: unsupported URL scheme "${protocol}" (expected redis: or rediss:)`);
  }
  const channel = options.channel ?? DEFAULT_CHANNEL;
  const name = options.connectionName ?? DEFAULT_CONNECTION_NAME;
  const logger = options.logger ?? console;
  const stats: BusStats = { published: 0, publishFailures: 0, received: 0, malformed: 0, reconnects: 0 };
  const handlers: Array<(message: Invalidation) => void> = [];
  const reconnectHandlers: Array<() => void> = [];

  const common: RedisOptions = {
    retryStrategy: (attempt) => Math.min(attempt * 100, MAX_RECONNECT_DELAY_MS),
  };
  const publisher = new Redis(options.url, {
    ...common,
    connectionName: `${name}:pub`,
    enableOfflineQueue: false,
    commandTimeout: PUBLISH_TIMEOUT_MS,
  });
  const subscriber = new Redis(options.url, {
    ...common,
    connectionName: `${name}:sub`,
    // Resubscribing is done by hand on "ready", so that the receiver learns when it completed.
    autoResubscribe: false,
    autoResendUnfulfilledCommands: false,
  });

  // A publish issued while the publisher is still making its first connection waits for that
  // attempt (bounded), so commits made during start-up are not lost to a race; later outages fail fast.
  let firstAttemptSettled = false;
  const firstAttempt = new Promise<void>((resolve) => {
    const settle = (): void => {
      firstAttemptSettled = true;
      resolve();
    };
    publisher.once("ready", settle);
    publisher.once("error", settle);
    publisher.once("end", settle);
  });

  let subscribed = false;
  let everSubscribed = false;
  let lostSinceSubscribed = false;
  let closing = false;
  const outage = { publisher: false, subscriber: false };

  const report = (error: Error, message: string, fields: Record<string, unknown> = {}): void => {
    logger.warn(message, { driver: "redis", channel, error: error.message, ...fields });
    options.onError?.(error);
  };

  const runGuarded = (what: string, fn: () => void): void => {
    try {
      fn();
    } catch (cause) {
      const error = asError(cause);
      logger.error(`invalidation ${what} failed`, { driver: "redis", channel, error: error.message });
      options.onError?.(error);
    }
  };

  const watch = (client: Redis, role: "publisher" | "subscriber"): void => {
    client.on("error", (cause: unknown) => {
      const error = asError(cause);
      // One log line per outage; every error still reaches onError.
      if (outage[role]) options.onError?.(error);
      else report(error, "redis bus connection error", { connection: role });
      outage[role] = true;
    });
    client.on("ready", () => {
      if (outage[role]) logger.info("redis bus connection restored", { driver: "redis", channel, connection: role });
      outage[role] = false;
    });
  };
  watch(publisher, "publisher");
  watch(subscriber, "subscriber");

  subscriber.on("close", () => {
    if (subscribed) lostSinceSubscribed = true;
    subscribed = false;
  });

  subscriber.on("ready", () => {
    subscriber.subscribe(channel).then(
      () => {
        if (closing || subscriber.status !== "ready") return;
        subscribed = true;
        const isReconnect = everSubscribed && lostSinceSubscribed;
        everSubscribed = true;
        lostSinceSubscribed = false;
        if (!isReconnect) return;
        stats.reconnects++;
        for (const handler of [...reconnectHandlers]) runGuarded("reconnect handler", handler);
      },
      (cause: unknown) => {
        // The connection closed mid-subscribe; the next "ready" tries again.
        if (!closing) report(asError(cause), "redis bus subscribe failed");
      },
    );
  });

  subscriber.on("message", (from: string, raw: string) => {
    if (from !== channel) return;
    const message = decode(raw);
    if (!message) {
      stats.malformed++;
      logger.warn("redis bus ignored a malformed message", { driver: "redis", channel, bytes: raw.length });
      return;
    }
    stats.received++;
    for (const handler of [...handlers]) runGuarded("subscriber", () => handler(message));
  });

  const shutdown = async (client: Redis): Promise<void> => {
    if (client.status === "end") return;
    if (client.status !== "ready") {
      client.disconnect();
      return;
    }
    try {
      await client.quit();
    } catch {
      client.disconnect();
    }
  };

  return {
    driver: "redis",
    stats,
    get connected() {
      return subscribed;
    },
    async publish(message) {
      try {
        if (!firstAttemptSettled) await Promise.race([firstAttempt, delay(PUBLISH_TIMEOUT_MS, undefined, { ref: false })]);
        await publisher.publish(channel, encode(message));
        stats.published++;
      } catch (cause) {
        stats.publishFailures++;
        report(asError(cause), "redis bus publish failed; replicas will catch up by polling", {
          version: message.version,
        });
      }
    },
    subscribe(handler) {
      handlers.push(handler);
    },
    onReconnect(handler) {
      reconnectHandlers.push(handler);
    },
    async close() {
      closing = true;
      subscribed = false;
      handlers.length = 0;
      reconnectHandlers.length = 0;
      await Promise.all([shutdown(publisher), shutdown(subscriber)]);
    },
  };
}
