import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createBoundedBatch } from "../../src/observability/bounded-batch.js";

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

function listBatch(maxPending: number, write: (batch: string[]) => void | Promise<void>) {
  let dropped = 0;
  const batch = createBoundedBatch<string[]>({
    flushIntervalMs: 1000,
    maxPending,
    empty: () => [],
    size: (b) => b.length,
    write,
    onDropped: () => dropped++,
  });
  return { batch, dropped: () => dropped };
}

describe("bounded batch", () => {
  it("refuses settings that would make it unbounded or spin", () => {
    const base = { empty: () => [], size: () => 0, write: () => {}, onDropped: () => {} };
    expect(() => createBoundedBatch({ ...base, flushIntervalMs: 1000, maxPending: 0 })).toThrow(/maxPending/);
    expect(() => createBoundedBatch({ ...base, flushIntervalMs: 1000, maxPending: 1.5 })).toThrow(/maxPending/);
    expect(() => createBoundedBatch({ ...base, flushIntervalMs: 0, maxPending: 10 })).toThrow(/flushIntervalMs/);
  });

  it("writes the pending records on each tick and nothing when there is nothing", async () => {
    const written: string[][] = [];
    const { batch } = listBatch(10, (b) => {
      written.push(b);
    });
    batch.room()?.push("a");
    batch.room()?.push("b");
    await vi.advanceTimersByTimeAsync(999);
    expect(written).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(written).toEqual([["a", "b"]]);
    await vi.advanceTimersByTimeAsync(5000);
    expect(written).toHaveLength(1);
    batch.room()?.push("c");
    await vi.advanceTimersByTimeAsync(1000);
    expect(written).toEqual([["a", "b"], ["c"]]);
    await batch.close();
  });

  it("writes a batch that reaches writeAt at the next turn of the event loop, not at the timer's next tick", async () => {
    const written: string[][] = [];
    const batch = createBoundedBatch<string[]>({
      flushIntervalMs: 1000,
      maxPending: 100,
      writeAt: 3,
      empty: () => [],
      size: (b) => b.length,
      write: (b) => {
        written.push(b);
      },
      onDropped: () => {},
    });
    batch.room()?.push("a");
    batch.room()?.push("b");
    await vi.advanceTimersByTimeAsync(0);
    expect(written).toEqual([]);
    batch.room()?.push("c");
    batch.room()?.push("d");
    await vi.advanceTimersByTimeAsync(0);
    expect(written).toEqual([["a", "b", "c", "d"]]);
    batch.room()?.push("e");
    await vi.advanceTimersByTimeAsync(999);
    expect(written).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(written).toEqual([["a", "b", "c", "d"], ["e"]]);
    await batch.close();
  });

  it("drops and counts records beyond the bound, and has room again after a flush", async () => {
    const written: string[][] = [];
    const { batch, dropped } = listBatch(2, (b) => {
      written.push(b);
    });
    for (const r of ["a", "b", "c", "d"]) batch.room()?.push(r);
    expect(dropped()).toBe(2);
    await batch.flush();
    batch.room()?.push("e");
    await batch.close();
    expect(written).toEqual([["a", "b"], ["e"]]);
    expect(dropped()).toBe(2);
  });

  it("writes a synchronous batch before flush returns", () => {
    const written: string[][] = [];
    const { batch } = listBatch(5, (b) => {
      written.push(b);
    });
    batch.room()?.push("a");
    void batch.flush();
    expect(written).toEqual([["a"]]);
  });

  it("never overlaps two writes: a flush during a slow write waits for it", async () => {
    const started: string[][] = [];
    let finish = (): void => {};
    const { batch } = listBatch(5, (b) => {
      started.push(b);
      return new Promise<void>((resolve) => {
        finish = resolve;
      });
    });
    batch.room()?.push("a");
    const first = batch.flush();
    batch.room()?.push("b");
    const second = batch.flush();
    await vi.advanceTimersByTimeAsync(0);
    expect(started).toEqual([["a"]]);
    finish();
    await first;
    await vi.advanceTimersByTimeAsync(0);
    expect(started).toEqual([["a"], ["b"]]);
    finish();
    await second;
  });

  it("stops its timer on close", async () => {
    const written: string[][] = [];
    const { batch } = listBatch(5, (b) => {
      written.push(b);
    });
    await batch.close();
    batch.room()?.push("late");
    await vi.advanceTimersByTimeAsync(10_000);
    expect(written).toEqual([]);
  });
});
