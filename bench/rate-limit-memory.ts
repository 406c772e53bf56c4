/**
 * bench/rate-limit-memory: bytes the rate limiter keeps per tracked credential, with a million
 * credentials counted in one hour, and the cost of Check's counting step and of the idle sweep.
 *
 *   npx tsc -p tsconfig.build.json && node --expose-gc dist/bench/rate-limit-memory.js   (N=1000000 to tune)
 */
import type { PrincipalView } from "../src/core/decision.js";
import { RateLimiter } from "../src/engine/rate-limiter.js";

const N = Number(process.env.N ?? 1_000_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");
const used = () => {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

// The principals exist anyway (the policy holds them): build them before measuring.
const principals: PrincipalView[] = Array.from({ length: N }, (_, i) =>
  Object.freeze({ kind: "api_key" as const, userId: "u", username: "u", keyId: `k${i.toString(36).padStart(11, "0")}`, tenant: "t", roles: [] }),
);
const T0 = Date.now();
const before = used();
const limiter = new RateLimiter({ defaults: { perMinute: 1000, perHour: 10_000, burst: 0, shadow: false }, maxTracked: N, sweepIntervalMs: 3_600_000 });
let started = process.hrtime.bigint();
for (const p of principals) limiter.take(p, 1, T0);
const firstNs = Number(process.hrtime.bigint() - started) / N;
const after = used();
console.log(`tracked ${limiter.sizes().keys} credentials: ${((after - before) / N).toFixed(0)} bytes each (heap + array buffers, ids not counted)`);
console.log(`first count of a credential: ${firstNs.toFixed(0)} ns`);
started = process.hrtime.bigint();
for (let round = 0; round < 3; round++) for (const p of principals) limiter.take(p, 1, T0 + 1);
console.log(`count of a tracked credential: ${(Number(process.hrtime.bigint() - started) / (3 * N)).toFixed(0)} ns`);
started = process.hrtime.bigint();
const dropped = limiter.sweep(T0 + 30 * 60_000, 2_000);
console.log(`one sweep slice of 2,000 busy credentials: ${(Number(process.hrtime.bigint() - started) / 1e6).toFixed(1)} ms (dropped ${dropped})`);
let total = 0;
started = process.hrtime.bigint();
while (limiter.sizes().keys > 0) total += limiter.sweep(T0 + 64 * 60_000, 2_000);
console.log(`sweeping all ${total} idle credentials an hour later: ${(Number(process.hrtime.bigint() - started) / 1e6).toFixed(0)} ms in slices of 2,000`);
console.log(`after the sweep: ${((used() - before) / N).toFixed(0)} bytes per credential still held (the array is kept for reuse)`);
limiter.close();
