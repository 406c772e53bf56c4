/**
 * bench/rate-limits: Check throughput with rate limits counted against Check with limits off, on
 * the same server in the same run (rounds interleaved), driven by h2load from a separate process.
 * Three API keys of one principal: "off" has no limit at all (VERDICT_RATE_LIMIT_* = 0), "on" is
 * counted against limits so high it is always admitted (the full counting path), "limited" has the
 * default 1000 a minute and 10000 an hour, so it is denied RATE_LIMITED after its first 1000.
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/rate-limits.js   (ROUNDS=3 SECONDS=5 CLIENTS=4 STREAMS=32)
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { AdminService } from "../gen/verdict/v1/admin_pb.js";
import { CheckRequestSchema, DecisionService } from "../gen/verdict/v1/decision_pb.js";
import { Reason } from "../gen/verdict/v1/types_pb.js";
import { grpcClient } from "../test/helpers/grpc.js";
import { formatRow, grpcFrame, h2load, median } from "./h2load.js";
import { BENCH_ROOT_PASSWORD, startBenchServer } from "./server.js";

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SECONDS = Number(process.env.SECONDS ?? 5);
const CLIENTS = Number(process.env.CLIENTS ?? 4);
const STREAMS = Number(process.env.STREAMS ?? 32);
const server = await startBenchServer();
const root = { authorization: `Basic ${Buffer.from(`root:${BENCH_ROOT_PASSWORD}`).toString("base64")}` };
const admin = grpcClient(AdminService, server.address);
const decision = grpcClient(DecisionService, server.address);

const newKey = async (limit?: { perMinute: number; perHour: number }) => {
  const k = await admin.createApiKey({ name: `bench-${Math.random()}`, owner: "bench-user" }, root);
  if (limit) await admin.setRateLimit({ target: { target: { case: "keyId", value: k.apiKey!.id } }, limit }, root);
  return k.secret;
};
const keys = {
  off: server.apiKey,
  on: await newKey({ perMinute: 1_000_000_000, perHour: 1_000_000_000 }),
  limited: await newKey({ perMinute: 1000, perHour: 10_000 }),
};
const request = (credential: string) => create(CheckRequestSchema, { credential, action: "read:orders", tenant: "bench" });
const probeOn = await decision.check(request(keys.on));
if (!probeOn.allowed || !probeOn.rateLimit) throw new Error(`the "on" key is not counted and allowed: ${Reason[probeOn.reason]}`);
const probeOff = await decision.check(request(keys.off));
if (!probeOff.allowed || probeOff.rateLimit) throw new Error("the \"off\" key is counted");
admin.close();
decision.close();

const url = `http://${server.address}/verdict.v1.DecisionService/Check`;
const targets = [
  { label: "limits off", url, body: grpcFrame(toBinary(CheckRequestSchema, request(keys.off))) },
  { label: "limits on (admitted)", url, body: grpcFrame(toBinary(CheckRequestSchema, request(keys.on))) },
  { label: "limits on (1000/min: RATE_LIMITED)", url, body: grpcFrame(toBinary(CheckRequestSchema, request(keys.limited))) },
];
console.log(`bench/rate-limits: ${ROUNDS} rounds x ${SECONDS}s per target, h2load -c ${CLIENTS} -m ${STREAMS}, store ${server.storeDriver}`);
const results = new Map<string, number[]>();
const cpu = new Map<string, number[]>();
for (let round = 1; round <= ROUNDS; round++) {
  for (const t of targets) {
    const before = process.cpuUsage();
    const r = await h2load({ ...t, seconds: SECONDS, clients: CLIENTS, streamsPerClient: STREAMS });
    const used = process.cpuUsage(before);
    // h2load's warm-up second is not counted in `succeeded`: the figure slightly overstates CPU per call.
    const perCall = (used.user + used.system) / (r.succeeded * (1 + 1 / SECONDS));
    console.log(`round ${round}  ${formatRow(r)}   server CPU ${perCall.toFixed(0)} us/call`);
    results.set(t.label, [...(results.get(t.label) ?? []), r.requestsPerSecond]);
    cpu.set(t.label, [...(cpu.get(t.label) ?? []), perCall]);
  }
}
const med = (label: string) => median(results.get(label)!);
const cpuMed = (label: string) => median(cpu.get(label)!);
console.log("");
for (const t of targets) console.log(`median ${t.label}: ${med(t.label).toFixed(0)} calls/s, server CPU ${cpuMed(t.label).toFixed(0)} us/call`);
console.log(`ratio limits on (admitted) / off: throughput ${(med(targets[1].label) / med(targets[0].label)).toFixed(3)} (target >= 0.95), CPU per call off / on ${(cpuMed(targets[0].label) / cpuMed(targets[1].label)).toFixed(3)}`);
console.log(`ratio limits on (limited) / off: throughput ${(med(targets[2].label) / med(targets[0].label)).toFixed(3)}, CPU per call off / on ${(cpuMed(targets[0].label) / cpuMed(targets[2].label)).toFixed(3)}`);

// In process, interleaved in small batches so that the machine's load falls on both alike: the
// decision step alone (engine.check), without transport.
const engine = server.verdict.engine;
const perBatch = new Map<string, number[]>();
for (let batch = 0; batch < 200; batch++) {
  for (const [label, credential] of Object.entries(keys)) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < 500; i++) engine.check(credential, "read:orders", "bench");
    perBatch.set(label, [...(perBatch.get(label) ?? []), Number(process.hrtime.bigint() - started) / 500]);
  }
}
const ns = (label: string) => median(perBatch.get(label)!);
console.log(`in process, engine.check median of 200 interleaved batches: off ${ns("off").toFixed(0)} ns, on (admitted) ${ns("on").toFixed(0)} ns, on (limited) ${ns("limited").toFixed(0)} ns`);
console.log(`in process, ratio off / on (admitted): ${(ns("off") / ns("on")).toFixed(3)}`);
await server.close();
process.exit(0);
