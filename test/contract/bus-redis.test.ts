import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { MeteredBus } from "../../src/bus/index.js";
import { openBus } from "../../src/bus/index.js";
import { createRedisBus } from "../../src/bus/redis.js";
import { TEST_REDIS_URL as url } from "../helpers/verdict.js";
import { invalidation, quietLogger, record, runBusContract, waitFor } from "./bus.contract.js";

/** Opens `count` buses on one fresh channel, each with its own connection name, once subscribed. */
async function openReplicas(count: number, onError?: (error: Error) => void, channel = `verdict:test:${randomUUID()}`) {
  const buses = Array.from({ length: count }, () =>
    createRedisBus({ url, channel, connectionName: `verdict:test:${randomUUID()}`, logger: quietLogger, onError }),
  );
  await waitFor(() => buses.every((bus) => bus.connected), 10_000, "subscriptions");
  return buses;
}

runBusContract({ driver: "redis", replicas: 2, open: (count, onError) => openReplicas(count, onError) });

describe("redis bus", () => {
  let admin: Redis;
  const opened: MeteredBus[] = [];

  beforeAll(() => {
    admin = new Redis(url);
  });
  afterAll(async () => {
    await admin.quit();
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((bus) => bus.close()));
  });

  async function open(name: string, channel: string, onError?: (error: Error) => void): Promise<MeteredBus> {
    const bus = createRedisBus({ url, channel, connectionName: name, logger: quietLogger, onError });
    opened.push(bus);
    await waitFor(() => bus.connected, 3000, `${name} subscribed`);
    return bus;
  }

  /** Drops one bus's subscriber connection, as a network blip or a Redis failover would. */
  async function killSubscriber(name: string): Promise<void> {
    const list = await admin.call("CLIENT", "LIST", "TYPE", "pubsub");
    const line = String(list)
      .split("\n")
      .find((l) => l.includes(` name=${name}:sub `));
    const id = line?.match(/^id=(\d+) /)?.[1];
    if (!id) throw new Error(`no pubsub client named ${name}:sub`);
    expect(await admin.call("CLIENT", "KILL", "ID", id)).toBe(1);
  }

  it("puts the compact JSON shape on the channel", async () => {
    const channel = `verdict:test:${randomUUID()}`;
    const raw: string[] = [];
    const listener = new Redis(url);
    listener.on("message", (_channel: string, message: string) => raw.push(message));
    await listener.subscribe(channel);
    const bus = await open(`verdict:test:${randomUUID()}`, channel);

    await bus.publish(invalidation(7, ["user", "u1"], ["binding", "u1"]));
    await bus.publish({ version: 9, changes: [{ version: 8, kind: "role", id: "admin" }] });
    await waitFor(() => raw.length === 2, 10_000, "raw messages");
    expect(raw).toEqual(['{"v":7,"c":[["user","u1"],["binding","u1"]]}', '{"v":9,"c":[["role","admin",8]]}']);
    await listener.quit();
  });

  it("counts and ignores malformed messages on the channel", async () => {
    const channel = `verdict:test:${randomUUID()}`;
    const bus = await open(`verdict:test:${randomUUID()}`, channel);
    const inbox = record(bus);
    const bad = [
      "not json",
      "null",
      "[]",
      '"text"',
      '{"c":[]}',
      '{"v":1}',
      '{"v":-1,"c":[]}',
      '{"v":1.5,"c":[]}',
      '{"v":"1","c":[]}',
      '{"v":1,"c":{}}',
      '{"v":1,"c":["user"]}',
      '{"v":1,"c":[["user"]]}',
      '{"v":1,"c":[["user",5]]}',
      '{"v":1,"c":[["bogus","x"]]}',
      '{"v":1,"c":[["toString","x"]]}',
      '{"v":1,"c":[["user","x",-2]]}',
      '{"v":1,"c":[["user","x",1,2]]}',
    ];
    for (const message of bad) await admin.publish(channel, message);
    await admin.publish(channel, '{"v":3,"c":[["api_key","k1"]]}');

    await waitFor(() => inbox.length === 1, 10_000, "the valid message");
    expect(inbox).toEqual([invalidation(3, ["api_key", "k1"])]);
    expect(bus.stats.malformed).toBe(bad.length);
    expect(bus.stats.received).toBe(1);
  });

  it("resubscribes after its subscriber connection is killed, then fires onReconnect", async () => {
    const channel = `verdict:test:${randomUUID()}`;
    const name = `verdict:test:${randomUUID()}`;
    const victim = await open(name, channel);
    const other = await open(`verdict:test:${randomUUID()}`, channel);
    const inbox = record(victim);
    const connectedWhenFired: boolean[] = [];
    victim.onReconnect(() => connectedWhenFired.push(victim.connected));
    let otherReconnects = 0;
    other.onReconnect(() => otherReconnects++);
    expect(connectedWhenFired).toEqual([]);

    for (const round of [1, 2]) {
      await killSubscriber(name);
      await waitFor(() => !victim.connected, 10_000, "the disconnect to be seen");
      await waitFor(() => connectedWhenFired.length === round, 3000, `reconnect ${round}`);
      expect(victim.stats.reconnects).toBe(round);
      await other.publish(invalidation(round, ["session", `s${round}`]));
      await waitFor(() => inbox.length === round, 2000, `message after reconnect ${round}`);
    }
    expect(connectedWhenFired).toEqual([true, true]);
    expect(inbox.map((m) => m.version)).toEqual([1, 2]);
    expect(otherReconnects).toBe(0);
    expect(other.stats.reconnects).toBe(0);
  });

  it("without a server, publishes fail fast and are counted, and it keeps retrying", async () => {
    const errors: Error[] = [];
    const bus = createRedisBus({ url: "redis://127.0.0.1:1", logger: quietLogger, onError: (e) => errors.push(e) });
    opened.push(bus);
    const started = Date.now();
    await expect(bus.publish(invalidation(1, ["user", "u1"]))).resolves.toBeUndefined();
    await expect(bus.publish(invalidation(2))).resolves.toBeUndefined();
    expect(Date.now() - started).toBeLessThan(500);
    expect(bus.stats).toMatchObject({ published: 0, publishFailures: 2, received: 0 });
    expect(bus.connected).toBe(false);
    // Both connections retry at 100, 200, 300 ms...: well over the first two attempts' errors.
    await waitFor(() => errors.filter((e) => /ECONNREFUSED/.test(e.message)).length >= 6, 10_000, "retries");
    expect(bus.connected).toBe(false);
    expect(bus.stats.reconnects).toBe(0);
  });

  it("is what openBus opens with a Redis URL, and rejects other URL schemes", async () => {
    const bus = await openBus({ redisUrl: url, logger: quietLogger });
    opened.push(bus);
    expect(bus.driver).toBe("redis");
    expect(() => createRedisBus({ url: "http://127.0.0.1:6379" })).toThrow(/unsupported URL scheme/);
  });
});
