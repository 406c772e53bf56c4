import { describe, expect, it } from "vitest";
import { createMemoryBus, openBus } from "../../src/bus/index.js";
import { invalidation, quietLogger, record, runBusContract } from "./bus.contract.js";

runBusContract({
  driver: "memory",
  replicas: 1,
  open: async (count, onError) => {
    if (count !== 1) throw new Error("the memory bus connects one process only");
    return [createMemoryBus({ logger: quietLogger, onError })];
  },
});

describe("memory bus", () => {
  it("delivers after publish returns, never on the publisher's stack", async () => {
    const bus = createMemoryBus();
    const inbox = record(bus);
    const published = bus.publish(invalidation(1, ["tenant", "t1"]));
    expect(inbox).toEqual([]);
    await published;
    await Promise.resolve();
    expect(inbox).toEqual([invalidation(1, ["tenant", "t1"])]);
    await bus.close();
  });

  it("never fires reconnect handlers", async () => {
    const bus = createMemoryBus();
    let reconnects = 0;
    bus.onReconnect(() => reconnects++);
    await bus.publish(invalidation(1));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(reconnects).toBe(0);
    expect(bus.stats.reconnects).toBe(0);
    await bus.close();
  });

  it("is what openBus opens without a Redis URL", async () => {
    for (const bus of [await openBus(), await openBus({ redisUrl: "", logger: quietLogger })]) {
      expect(bus.driver).toBe("memory");
      await bus.close();
    }
  });
});
