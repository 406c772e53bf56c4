/**
 * One behaviour suite for every invalidation bus driver: each driver's test file calls
 * `runBusContract` with a harness that opens connected buses.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Invalidation } from "../../src/bus/bus.js";
import type { BusLogger, MeteredBus } from "../../src/bus/index.js";
import type { ChangeEntry, EntityKind } from "../../src/core/change-log.js";

/** Opens buses for one test. */
export interface BusHarness {
  /** "memory" or "redis": the expected `driver`. */
  readonly driver: string;
  /** How many buses one `open` can connect to one another (one process: 1). */
  readonly replicas: number;
  /**
   * Opens `count` buses that share one fresh channel (replicas of one deployment), resolving once
   * every one of them can deliver.
   */
  open(count: number, onError?: (error: Error) => void): Promise<MeteredBus[]>;
}

/** A logger that keeps test output clean. */
export const quietLogger: BusLogger = { info() {}, warn() {}, error() {} };

/** Polls `predicate` every 5 ms until it holds, failing after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A message whose every entry shares its version, as a committed mutation announces. */
export function invalidation(version: number, ...changes: Array<[EntityKind, string]>): Invalidation {
  return { version, changes: changes.map(([kind, id]) => ({ version, kind, id })) };
}

/** Registers a handler that records what it receives. */
export function record(bus: MeteredBus): Invalidation[] {
  const received: Invalidation[] = [];
  bus.subscribe((message) => received.push(message));
  return received;
}

/** Runs the shared suite against one driver. */
export function runBusContract(harness: BusHarness): void {
  describe(`bus contract: ${harness.driver}`, () => {
    const opened: MeteredBus[] = [];
    const open = async (count: number, onError?: (error: Error) => void): Promise<MeteredBus[]> => {
      const buses = await harness.open(count, onError);
      opened.push(...buses);
      return buses;
    };

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((bus) => bus.close()));
    });

    it("reports its driver and starts connected with zeroed counters", async () => {
      const [bus] = await open(1);
      expect(bus.driver).toBe(harness.driver);
      expect(bus.connected).toBe(true);
      expect(bus.stats).toEqual({ published: 0, publishFailures: 0, received: 0, malformed: 0, reconnects: 0 });
    });

    it("delivers every message to every subscriber of every replica, its own included", async () => {
      const buses = await open(harness.replicas);
      const inboxes = buses.flatMap((bus) => [record(bus), record(bus)]);
      const sent = buses.map((_, i) => invalidation(i + 1, ["user", `u${i}`]));
      for (const [i, bus] of buses.entries()) await bus.publish(sent[i]);

      await waitFor(() => inboxes.every((inbox) => inbox.length === sent.length), 10_000, "delivery");
      for (const inbox of inboxes) expect(inbox).toEqual(sent);
      for (const bus of buses) {
        expect(bus.stats.published).toBe(1);
        expect(bus.stats.received).toBe(sent.length);
        expect(bus.stats.publishFailures).toBe(0);
      }
    });

    it("preserves the order of sequential and concurrent publishes", async () => {
      const buses = await open(harness.replicas);
      const publisher = buses[0];
      const inbox = record(buses[buses.length - 1]);
      for (let v = 1; v <= 100; v++) await publisher.publish(invalidation(v, ["role", `r${v}`]));
      await Promise.all(Array.from({ length: 100 }, (_, i) => publisher.publish(invalidation(101 + i))));

      await waitFor(() => inbox.length === 200, 10_000, "200 messages");
      expect(inbox.map((m) => m.version)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
      expect(inbox[0].changes).toEqual([{ version: 1, kind: "role", id: "r1" }]);
    });

    it("round-trips messages with many changes, odd ids and entries at other versions", async () => {
      const buses = await open(harness.replicas);
      const inbox = record(buses[buses.length - 1]);
      const kinds: EntityKind[] = ["tenant", "user", "role", "binding", "api_key", "session", "signing_key"];
      const odd = ["", "a:b", 'quote"d', "back\\slash", "ünïcødé ✓", "[1,2]", "new\nline"];
      const changes: ChangeEntry[] = Array.from({ length: 1000 }, (_, i) => ({
        version: 42,
        kind: kinds[i % kinds.length],
        id: i < odd.length ? odd[i] : `id-${i}`,
      }));
      changes.push({ version: 41, kind: "user", id: "older" });
      const many: Invalidation = { version: 42, changes };
      const empty: Invalidation = { version: 43, changes: [] };
      await buses[0].publish(many);
      await buses[0].publish(empty);

      await waitFor(() => inbox.length === 2, 10_000, "two messages");
      expect(inbox[0]).toEqual(many);
      expect(inbox[1]).toEqual(empty);
    });

    it("keeps delivering when a subscriber throws, and reports the exception", async () => {
      const errors: Error[] = [];
      const [bus] = await open(1, (error) => errors.push(error));
      bus.subscribe(() => {
        throw new Error("subscriber bug");
      });
      const inbox = record(bus);
      await expect(bus.publish(invalidation(1))).resolves.toBeUndefined();
      await bus.publish(invalidation(2));

      await waitFor(() => inbox.length === 2, 10_000, "two messages");
      expect(inbox.map((m) => m.version)).toEqual([1, 2]);
      expect(errors.map((e) => e.message)).toEqual(["subscriber bug", "subscriber bug"]);
    });

    it("after close, is disconnected and counts a publish as a failure without throwing", async () => {
      const [bus] = await open(1);
      const inbox = record(bus);
      await bus.close();
      expect(bus.connected).toBe(false);
      await expect(bus.publish(invalidation(1))).resolves.toBeUndefined();
      expect(bus.stats.publishFailures).toBe(1);
      expect(bus.stats.published).toBe(0);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(inbox).toEqual([]);
      await expect(bus.close()).resolves.toBeUndefined();
    });
  });
}
