/**
 * The embedded database runs in its own thread: its WebAssembly memory and file buffers (hundreds of
 * MiB outside the JavaScript heap) stay out of the isolate that answers Check, where they made the
 * garbage collector promote and mark-compact several times a second under load (bench/RESULTS.md).
 */
import { afterEach, expect, it } from "vitest";
import { createPgliteStore } from "../../src/store/pglite.js";
import type { SqlStore } from "../../src/store/sql-store.js";

const MIB = 2 ** 20;
let store: SqlStore | undefined;

afterEach(async () => {
  await store?.close();
  store = undefined;
});

it("keeps PGlite's memory out of the main thread", async () => {
  const before = process.memoryUsage();
  store = createPgliteStore({ dataDir: "memory://", schema: "verdict_thread" });
  await store.migrate();
  await store.ping();
  const after = process.memoryUsage();
  // PGlite in this thread adds about 200 MiB of ArrayBuffers and 450 MiB of WebAssembly memory here.
  expect((after.external - before.external) / MIB).toBeLessThan(32);
  expect((after.arrayBuffers - before.arrayBuffers) / MIB).toBeLessThan(32);
  // PGlite takes 3 to 5 s to start, much longer while the whole suite runs on this machine.
}, 120_000);
