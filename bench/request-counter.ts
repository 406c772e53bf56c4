/**
 * bench/request-counter: what the per-transport request counter (verdict_decision_requests_total)
 * adds to every Check, side by side with the latency observation Check already makes.
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/request-counter.js
 */
import { createMetrics } from "../src/observability/metrics.js";

const N = 20_000_000;
const metrics = createMetrics();
const count = metrics.decisionRequestCounter("Check", "grpc");
const timer = metrics.checkDuration.labels("check");
const noop = (code: string) => code.length;

function perCall(fn: () => void): number {
  const started = process.hrtime.bigint();
  for (let i = 0; i < N; i++) fn();
  return Number(process.hrtime.bigint() - started) / N;
}

for (let round = 1; round <= 3; round++) {
  const empty = perCall(() => noop("ok"));
  const counted = perCall(() => count("ok"));
  const observed = perCall(() => timer.observe(0.00002));
  console.log(
    `round ${round}: empty call ${empty.toFixed(2)} ns, request counter ${counted.toFixed(2)} ns, latency observe ${observed.toFixed(2)} ns (counter / observe ${(counted / observed).toFixed(2)})`,
  );
}
