/**
 * bench/check: the Check RPC against the ceiling of its RPC stack, side by side in one run, driven
 * by h2load from a separate process. Verdict runs in its own process too (server-process.ts), as in
 * production, so the bench's own work stays out of its heap and off its event loop. Targets,
 * interleaved round by round:
 * - a bare @grpc/grpc-js server in its own process answering the same path with an empty message
 *   (bench/noop-server.ts: what any service on grpc-js costs at least),
 * - grpc.health.v1 Health/Check on Verdict's server (the same server and adapter, no decision),
 * - Check with an API key (allow) and with no credential (deny).
 * Per target: calls/s, latency percentiles from h2load's per-call log, server CPU per call (each
 * server process, all threads, from /proc), Verdict's event-loop delay, and the ratios to the no-op.
 *
 *   npm run bench:check            (ROUNDS=3 SECONDS=5 CLIENTS=4 STREAMS=16 to tune; with
 *   DATABASE_URL, Postgres in a fresh schema dropped at the end instead of the embedded PGlite)
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { CheckRequestSchema, DecisionService } from "../gen/verdict/v1/decision_pb.js";
import { HealthCheckRequestSchema } from "../gen/grpc/health/v1/health_pb.js";
import { Reason } from "../gen/verdict/v1/types_pb.js";
import { grpcClient } from "../test/helpers/grpc.js";
import { type LoadResult, formatRow, grpcFrame, h2load, median } from "./h2load.js";
import { startNoopServer } from "./noop.js";
import { spawnBenchServer } from "./server-process.js";

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SECONDS = Number(process.env.SECONDS ?? 5);
const CLIENTS = Number(process.env.CLIENTS ?? 4);
const STREAMS = Number(process.env.STREAMS ?? 16);
const CHECK_PATH = "/verdict.v1.DecisionService/Check";

const server = await spawnBenchServer();
const { address, apiKey: secret } = server;
const noop = await startNoopServer([CHECK_PATH]);

const checkRequest = create(CheckRequestSchema, { credential: secret, action: "read:orders", tenant: "bench" });
const decision = grpcClient(DecisionService, address);
const probe = await decision.check(checkRequest);
decision.close();
if (!probe.allowed || probe.reason !== Reason.ALLOWED) throw new Error(`the bench Check is not allowed: ${Reason[probe.reason]}`);

const checkBody = grpcFrame(toBinary(CheckRequestSchema, checkRequest));
const ownCpu = () => server.cpuMicros();
const targets = [
  { label: "no-op (grpc-js, own process)", url: `http://${noop.address}${CHECK_PATH}`, body: checkBody, cpu: () => noop.cpuMicros(), isVerdict: false },
  {
    label: "Health/Check (Verdict server)",
    url: `http://${address}/grpc.health.v1.Health/Check`,
    body: grpcFrame(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema))),
    cpu: ownCpu,
    isVerdict: true,
  },
  { label: "Check (API key, allow)", url: `http://${address}${CHECK_PATH}`, body: checkBody, cpu: ownCpu, isVerdict: true },
  {
    label: "Check (no credential, deny)",
    url: `http://${address}${CHECK_PATH}`,
    body: grpcFrame(toBinary(CheckRequestSchema, create(CheckRequestSchema, { action: "read:orders", tenant: "bench" }))),
    cpu: ownCpu,
    isVerdict: true,
  },
];

/** One h2load run with the server's CPU per call and, for Verdict, its event-loop delay. */
type Measured = LoadResult & { readonly cpuMicrosPerCall: number; readonly loopDelayMaxMs: number };
console.log(`bench/check: ${ROUNDS} rounds x ${SECONDS}s per target, h2load -c ${CLIENTS} -m ${STREAMS}, store ${server.storeDriver}`);
const results = new Map<string, Measured[]>();
for (let round = 1; round <= ROUNDS; round++) {
  for (const t of round % 2 === 1 ? targets : [...targets].reverse()) {
    if (t.isVerdict) await server.loopDelay();
    const cpuBefore = t.cpu();
    const load = await h2load({ ...t, seconds: SECONDS, clients: CLIENTS, streamsPerClient: STREAMS });
    const cpu = t.cpu() - cpuBefore;
    const loop = t.isVerdict ? await server.loopDelay() : undefined;
    // The CPU time includes h2load's warm-up second, which `succeeded` does not count: one more second of calls.
    const r: Measured = { ...load, cpuMicrosPerCall: cpu / (load.succeeded + load.requestsPerSecond), loopDelayMaxMs: loop?.maxMs ?? NaN };
    const loopText = t.isVerdict ? `   loop delay max ${r.loopDelayMaxMs.toFixed(1)} ms` : "";
    console.log(`round ${round}  ${formatRow(r)}   server CPU ${r.cpuMicrosPerCall.toFixed(0)} us/call${loopText}`);
    results.set(t.label, [...(results.get(t.label) ?? []), r]);
  }
}

const med = (label: string, f: (r: Measured) => number) => median(results.get(label)!.map(f));
const worst = (label: string) => Math.max(...results.get(label)!.map((r) => r.maxMs));
console.log("");
console.log("median of rounds                calls/s    p50 ms    p99 ms  p99.9 ms    max ms  CPU us/call");
for (const { label } of targets) {
  const cols = [
    med(label, (r) => r.requestsPerSecond).toFixed(0),
    med(label, (r) => r.p50Ms).toFixed(2),
    med(label, (r) => r.p99Ms).toFixed(2),
    med(label, (r) => r.p999Ms).toFixed(2),
    med(label, (r) => r.maxMs).toFixed(2),
    med(label, (r) => r.cpuMicrosPerCall).toFixed(0),
  ];
  console.log(`${label.padEnd(30)} ${cols.map((c) => c.padStart(9)).join(" ")}   (worst max ${worst(label).toFixed(1)} ms)`);
}
const [noopLabel, , checkLabel] = targets.map((t) => t.label);
const ratio = (f: (r: Measured) => number) => (med(checkLabel, f) / med(noopLabel, f)).toFixed(2);
console.log("");
console.log(`Check / no-op: throughput ${ratio((r) => r.requestsPerSecond)} (target >= 0.9), p99 ${ratio((r) => r.p99Ms)} (target <= 1.5), max ${ratio((r) => r.maxMs)} (target <= 2)`);
console.log(`server CPU per call no-op / Check ${(med(noopLabel, (r) => r.cpuMicrosPerCall) / med(checkLabel, (r) => r.cpuMicrosPerCall)).toFixed(2)}`);
const memory = server.memory();
console.log(`RSS: Verdict ${(memory.rss / 2 ** 20).toFixed(0)} MiB (peak ${(memory.peak / 2 ** 20).toFixed(0)}), no-op ${(noop.rssBytes() / 2 ** 20).toFixed(0)} MiB`);
await noop.close();
await server.close();
process.exit(0);
