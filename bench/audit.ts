/**
 * bench/audit: how long the decision audit holds the event loop under a flood of denials, written
 * in chunks of 256 records a turn apart (now) against a whole batch at once (chunk = the queue's
 * bound, 10,000: what it did before), side by side in one run.
 *
 * Denials are recorded at RATE a second (15,000: Check's throughput on one core of this machine),
 * each turn of the event loop recording those due since the last, and the audit writes its JSON
 * lines synchronously to a file, as it writes to stdout (a pipe or a file is written synchronously
 * on Linux). Reported per variant: records per
 * second, the longest single write, and the gaps between turns (p99, max): how long a Check that
 * arrived during a write waited for the event loop.
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/audit.js     (ROUNDS=3 SECONDS=3 RATE=15000)
 */
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Decision } from "../src/core/decision.js";
import { createDecisionAudit } from "../src/observability/audit.js";
import { median } from "./h2load.js";

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SECONDS = Number(process.env.SECONDS ?? 3);
const RATE = Number(process.env.RATE ?? 15_000);
const MAX_PENDING = 10_000;
const deny: Decision = { allowed: false, reason: "UNAUTHENTICATED", message: "no credential", principal: undefined, version: 7 };

interface Run {
  readonly recordsPerSecond: number;
  readonly longestWriteMs: number;
  readonly gapP99Ms: number;
  readonly gapMaxMs: number;
}

async function run(chunk: number, file: string): Promise<Run> {
  const fd = openSync(file, "w");
  let longestWriteMs = 0;
  let dropped = 0;
  const audit = createDecisionAudit({
    allowSampleRate: 0.01,
    maxPending: MAX_PENDING,
    flushIntervalMs: 1000,
    chunk,
    write: (lines) => {
      const t0 = performance.now();
      writeSync(fd, lines);
      longestWriteMs = Math.max(longestWriteMs, performance.now() - t0);
    },
    onDropped: () => dropped++,
  });
  const gaps: number[] = [];
  let records = 0;
  const started = performance.now();
  let last = started;
  await new Promise<void>((resolve) => {
    const turn = () => {
      const now = performance.now();
      gaps.push(now - last);
      last = now;
      if (now - started >= SECONDS * 1000) return resolve();
      const due = Math.floor(((now - started) / 1000) * RATE);
      while (records < due) audit.record("check", deny, "read:orders", "bench", `d${records++}`);
      setImmediate(turn);
    };
    setImmediate(turn);
  });
  const elapsed = (performance.now() - started) / 1000;
  await audit.close();
  closeSync(fd);
  gaps.sort((a, b) => a - b);
  if (dropped > 0) console.log(`  (chunk ${chunk}: ${dropped} records dropped at the queue's bound)`);
  return {
    recordsPerSecond: records / elapsed,
    longestWriteMs,
    gapP99Ms: gaps[Math.floor(gaps.length * 0.99)],
    gapMaxMs: gaps[gaps.length - 1],
  };
}

const dir = mkdtempSync(join(tmpdir(), "verdict-bench-audit-"));
const variants = [
  { label: "chunks of 256 (now)", chunk: 256 },
  { label: "whole batch (before)", chunk: MAX_PENDING },
];
const results = new Map<string, Run[]>();
try {
  console.log(`bench/audit: ${ROUNDS} rounds x ${SECONDS}s per variant, ${RATE} denials a second`);
  for (let round = 1; round <= ROUNDS; round++) {
    for (const v of round % 2 ? variants : [...variants].reverse()) {
      const r = await run(v.chunk, join(dir, "audit.log"));
      console.log(
        `round ${round}  ${v.label.padEnd(22)} ${r.recordsPerSecond.toFixed(0).padStart(8)} records/s   longest write ${r.longestWriteMs.toFixed(2).padStart(6)} ms   ` +
          `gap between turns p99 ${r.gapP99Ms.toFixed(2).padStart(6)} ms  max ${r.gapMaxMs.toFixed(2).padStart(6)} ms`,
      );
      results.set(v.label, [...(results.get(v.label) ?? []), r]);
    }
  }
  const med = (label: string, f: (r: Run) => number) => median(results.get(label)!.map(f));
  const [now, before] = variants.map((v) => v.label);
  console.log(
    `median longest write: ${med(now, (r) => r.longestWriteMs).toFixed(2)} ms now, ${med(before, (r) => r.longestWriteMs).toFixed(2)} ms before; ` +
      `max gap ${med(now, (r) => r.gapMaxMs).toFixed(2)} ms now, ${med(before, (r) => r.gapMaxMs).toFixed(2)} ms before ` +
      `(before / now ${(med(before, (r) => r.gapMaxMs) / med(now, (r) => r.gapMaxMs)).toFixed(1)}x); records/s now / before ${(med(now, (r) => r.recordsPerSecond) / med(before, (r) => r.recordsPerSecond)).toFixed(2)}`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
