/**
 * bench/check: Check RPC throughput and latency against a no-op RPC (grpc.health.v1 Health/Check)
 * on the same server in the same run, driven by h2load from a separate process.
 *
 *   npm run bench:check            (ROUNDS=3 SECONDS=5 CLIENTS=4 STREAMS=32 to tune)
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { CheckRequestSchema, DecisionService } from "../gen/verdict/v1/decision_pb.js";
import { HealthCheckRequestSchema } from "../gen/grpc/health/v1/health_pb.js";
import { Reason } from "../gen/verdict/v1/types_pb.js";
import { grpcClient } from "../test/helpers/grpc.js";
import { formatRow, grpcFrame, h2load, median } from "./h2load.js";
import { startBenchServer } from "./server.js";

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SECONDS = Number(process.env.SECONDS ?? 5);
const CLIENTS = Number(process.env.CLIENTS ?? 4);
const STREAMS = Number(process.env.STREAMS ?? 32);
const server = await startBenchServer();
const { address, apiKey: secret } = server;

const checkRequest = create(CheckRequestSchema, { credential: secret, action: "read:orders", tenant: "bench" });
const decision = grpcClient(DecisionService, address);
const probe = await decision.check(checkRequest);
decision.close();
if (!probe.allowed || probe.reason !== Reason.ALLOWED) throw new Error(`the bench Check is not allowed: ${Reason[probe.reason]}`);

const base = `http://${address}`;
const targets = [
  { label: "no-op (Health/Check)", url: `${base}/grpc.health.v1.Health/Check`, body: grpcFrame(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema))) },
  { label: "Check (API key, allow)", url: `${base}/verdict.v1.DecisionService/Check`, body: grpcFrame(toBinary(CheckRequestSchema, checkRequest)) },
  {
    label: "Check (no credential, deny)",
    url: `${base}/verdict.v1.DecisionService/Check`,
    body: grpcFrame(toBinary(CheckRequestSchema, create(CheckRequestSchema, { action: "read:orders", tenant: "bench" }))),
  },
];

console.log(`bench/check: ${ROUNDS} rounds x ${SECONDS}s per target, h2load -c ${CLIENTS} -m ${STREAMS}, store ${server.storeDriver}`);
const results = new Map<string, Array<Awaited<ReturnType<typeof h2load>>>>();
const cpuPerCallByLabel = new Map<string, number[]>();
for (let round = 1; round <= ROUNDS; round++) {
  for (const t of targets) {
    const cpu = process.cpuUsage();
    const r = await h2load({ ...t, seconds: SECONDS, clients: CLIENTS, streamsPerClient: STREAMS });
    const used = process.cpuUsage(cpu);
    // h2load's warm-up second is not counted in `succeeded`: the figure slightly overstates CPU per call.
    const cpuPerCall = (used.user + used.system) / (r.succeeded * (1 + 1 / SECONDS));
    cpuPerCallByLabel.set(t.label, [...(cpuPerCallByLabel.get(t.label) ?? []), cpuPerCall]);
    console.log(`round ${round}  ${formatRow(r)}   server CPU ${cpuPerCall.toFixed(0)} us/call`);
    results.set(t.label, [...(results.get(t.label) ?? []), r]);
  }
}
const med = (label: string, f: (r: Awaited<ReturnType<typeof h2load>>) => number) => median(results.get(label)!.map(f));
const [noop, check] = targets.map((t) => t.label);
console.log("");
console.log(`median no-op  ${med(noop, (r) => r.requestsPerSecond).toFixed(0)} calls/s  p50 ${med(noop, (r) => r.p50Ms).toFixed(2)} ms  p99 ${med(noop, (r) => r.p99Ms).toFixed(2)} ms`);
console.log(`median Check  ${med(check, (r) => r.requestsPerSecond).toFixed(0)} calls/s  p50 ${med(check, (r) => r.p50Ms).toFixed(2)} ms  p99 ${med(check, (r) => r.p99Ms).toFixed(2)} ms`);
console.log(`ratio Check / no-op throughput: ${(med(check, (r) => r.requestsPerSecond) / med(noop, (r) => r.requestsPerSecond)).toFixed(3)} (target >= 0.9)`);
const cpuMed = (label: string) => median(cpuPerCallByLabel.get(label)!);
console.log(`server CPU per call: no-op ${cpuMed(noop).toFixed(0)} us, Check ${cpuMed(check).toFixed(0)} us, ratio no-op / Check ${(cpuMed(noop) / cpuMed(check)).toFixed(3)}`);
await server.close();
process.exit(0);
