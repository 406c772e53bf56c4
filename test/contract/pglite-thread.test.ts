/**
 * The embedded database runs in its own thread: its WebAssembly memory and file buffers (hundreds of
 * MiB outside the JavaScript heap) stay out of the isolate that answers Check, where they made the
 * garbage collector promote and mark-compact several times a second under load (bench/RESULTS.md).
 * A thread that stops fails every request, waiting or later, instead of leaving it pending forever.
 */
import { afterEach, expect, it } from "vitest";
import { createPgliteDriver, createPgliteStore } from "../../src/store/pglite.js";
import { type SqlStore, createSqlStore } from "../../src/store/sql-store.js";

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

/** `work`, or a rejection saying it still had not settled after `ms`: a request that never settles fails the test instead of hanging it. */
function settled<T>(work: Promise<T>, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms)));
  return Promise.race([work, hung]).finally(() => clearTimeout(timer));
}

it("fails every waiting and later request with an unavailable store error once its thread has stopped", async () => {
  const driver = createPgliteDriver({ dataDir: "memory://", schema: "verdict_thread_exit" });
  store = createSqlStore(driver);
  await store.migrate();
  const waiting: Promise<unknown>[] = [store.currentVersion(), driver.query("SELECT 1")];
  await (await driver.thread).terminate();
  const unavailable = { name: "StoreError", code: "unavailable", message: expect.stringMatching(/embedded database.*stopped/) };
  for (const request of waiting) await expect(settled(request)).rejects.toMatchObject(unavailable);
  const later: Array<() => Promise<unknown>> = [
    () => driver.query("SELECT 1"),
    () => driver.exec("SELECT 1"),
    () => driver.transaction((tx) => tx.query("SELECT 1")),
    () => store!.currentVersion(),
    () => store!.listTenants(),
  ];
  for (const request of later) {
    await expect(settled(request())).rejects.toMatchObject(unavailable);
  }
  await settled(store.close());
  store = undefined;
}, 120_000);
