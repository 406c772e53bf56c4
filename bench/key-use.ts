/**
 * bench/key-use: how long writing API keys' last-use times holds the event loop, when many keys
 * were used in one interval: the batch written in statements of 2,000 keys (now) against one
 * statement for the whole batch (before), side by side in one run, on the real store (Postgres in
 * a fresh schema, dropped at the end; EMBEDDED=1: PGlite in memory).
 *
 * A probe turns the event loop continuously (setImmediate) while the recorder flushes KEYS pending
 * keys; reported per variant: how long the flush took and the longest gap between turns, which is
 * how long a Check arriving then would have waited. The keys do not exist in the store: the
 * statement's own work in the database is less than with real keys, the work on the event loop
 * (parameters encoded, or copied to PGlite's thread) is the same.
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/key-use.js     (ROUNDS=3 KEYS=100000)
 */
import { randomBytes } from "node:crypto";
import { createKeyUseRecorder } from "../src/engine/key-use.js";
import { openStore } from "../src/store/index.js";
import { TEST_DATABASE_URL, dropSchema, freshSchema } from "../test/helpers/verdict.js";
import { median } from "./h2load.js";

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const KEYS = Number(process.env.KEYS ?? 100_000);
const embedded = process.env.EMBEDDED === "1";

const schema = freshSchema();
const store = await openStore(embedded ? { dataDir: "memory://" } : { databaseUrl: TEST_DATABASE_URL, dataDir: "", schema });
await store.migrate();
const ids = Array.from({ length: KEYS }, () => `k_${randomBytes(8).toString("hex")}`);

async function run(statementKeys: number): Promise<{ flushMs: number; longestGapMs: number }> {
  const failures: unknown[] = [];
  const recorder = createKeyUseRecorder({
    flushIntervalMs: 3_600_000,
    maxPending: KEYS,
    statementKeys,
    write: (uses) => store.recordKeyUse(uses),
    onDropped: () => {},
    onFlushFailed: (error) => failures.push(error),
  });
  const now = Date.now();
  for (const id of ids) recorder.record(id, now);
  let longestGapMs = 0;
  let done = false;
  let last = performance.now();
  const probe = () => {
    const t = performance.now();
    longestGapMs = Math.max(longestGapMs, t - last);
    last = t;
    if (!done) setImmediate(probe);
  };
  setImmediate(probe);
  await new Promise((r) => setImmediate(r));
  const started = performance.now();
  await recorder.flush();
  const flushMs = performance.now() - started;
  done = true;
  await recorder.close();
  if (failures.length > 0) throw failures[0] as Error;
  return { flushMs, longestGapMs };
}

const variants = [
  { label: "statements of 2000 (now)", keys: 2000 },
  { label: "one statement (before)", keys: KEYS },
];
const results = new Map<string, Array<{ flushMs: number; longestGapMs: number }>>();
try {
  console.log(`bench/key-use: ${KEYS} keys pending, ${ROUNDS} rounds, store ${embedded ? "pglite" : "postgres"}`);
  await run(2000); // warm-up: connections, statement plans, JIT
  for (let round = 1; round <= ROUNDS; round++) {
    for (const v of round % 2 ? variants : [...variants].reverse()) {
      const r = await run(v.keys);
      console.log(`round ${round}  ${v.label.padEnd(26)} flush ${r.flushMs.toFixed(0).padStart(5)} ms   longest gap between turns ${r.longestGapMs.toFixed(1).padStart(6)} ms`);
      results.set(v.label, [...(results.get(v.label) ?? []), r]);
    }
  }
  const med = (label: string, f: (r: { flushMs: number; longestGapMs: number }) => number) => median(results.get(label)!.map(f));
  const [now, before] = variants.map((v) => v.label);
  console.log(
    `median longest gap: ${med(now, (r) => r.longestGapMs).toFixed(1)} ms now, ${med(before, (r) => r.longestGapMs).toFixed(1)} ms before; ` +
      `flush ${med(now, (r) => r.flushMs).toFixed(0)} ms now, ${med(before, (r) => r.flushMs).toFixed(0)} ms before`,
  );
} finally {
  await store.close();
  if (!embedded) await dropSchema(schema);
}
process.exit(0);
