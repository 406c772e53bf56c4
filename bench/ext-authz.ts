/**
 * bench/ext-authz: Envoy ext_authz Check (envoy.service.auth.v3.Authorization/Check) against the
 * plain verdict Check RPC for the same decision (API key, read:orders, allow), on the same server in
 * the same run, driven by h2load from a separate process with many calls in flight. The ext_authz
 * request is the one Envoy sends for a typical HTTP/2 request: pseudo-headers, a dozen ordinary
 * headers, peer addresses, context_extensions and metadata_context. Beside them, the ceiling of the
 * RPC stack: a bare @grpc/grpc-js server in its own process answering the ext_authz path with an
 * empty message (bench/noop-server.ts). Rounds alternate the order of the targets; medians of
 * calls/s, latency percentiles (h2load's per-call log), server CPU per call are compared.
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/ext-authz.js
 *   (ROUNDS=3 SECONDS=5 CLIENTS=4 STREAMS=32 to tune; with DATABASE_URL, Postgres in a fresh schema,
 *   dropped at the end, instead of PGlite; Verdict runs in its own process, server-process.ts)
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { CheckRequestSchema, DecisionService } from "../gen/verdict/v1/decision_pb.js";
import { Reason } from "../gen/verdict/v1/types_pb.js";
import { Authorization, CheckRequestSchema as EnvoyCheckRequestSchema } from "../gen/envoy/service/auth/v3/external_auth_pb.js";
import { grpcClient } from "../test/helpers/grpc.js";
import { envoyBenchRequest } from "./envoy-request.js";
import { formatRow, grpcFrame, h2load, median, type LoadResult } from "./h2load.js";
import { startNoopServer } from "./noop.js";
import { spawnBenchServer } from "./server-process.js";

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SECONDS = Number(process.env.SECONDS ?? 5);
const CLIENTS = Number(process.env.CLIENTS ?? 4);
const STREAMS = Number(process.env.STREAMS ?? 16);
const EXT_AUTHZ_PATH = "/envoy.service.auth.v3.Authorization/Check";
const TARGET_RATIO = 0.85;

const rulesDir = mkdtempSync(join(tmpdir(), "verdict-bench-rules-"));
const rulesPath = join(rulesDir, "rules.yaml");
writeFileSync(
  rulesPath,
  [
    "rules:",
    "  - { match: GET /v1/orders/*, action: read:orders }",
    "  - { match: POST /v1/orders, action: create:orders }",
    "  - { match: DELETE /v1/orders/*, action: delete:orders }",
    "  - { match: GET /v1/invoices/**, action: read:invoices }",
    "exempt: [/healthz]",
    "",
  ].join("\n"),
);

const server = await spawnBenchServer({ VERDICT_EXT_AUTHZ_RULES: rulesPath });
const { address, apiKey: secret } = server;

const checkRequest = create(CheckRequestSchema, { credential: secret, action: "read:orders", tenant: "bench" });
const path = "/v1/orders/8f14e45f-ceea-467f-a0e6-7a1b0c2d3e4f?expand=items";
const envoyRequest = envoyBenchRequest(
  secret,
  path,
  { "accept-language": "en-GB,en;q=0.9", "x-forwarded-for": "203.0.113.7", "x-envoy-expected-rq-timeout-ms": "15000" },
  true,
);

const decision = grpcClient(DecisionService, address);
const probe = await decision.check(checkRequest);
decision.close();
if (!probe.allowed || probe.reason !== Reason.ALLOWED) throw new Error(`the bench Check is not allowed: ${Reason[probe.reason]}`);
const envoy = grpcClient(Authorization, address);
const envoyProbe = await envoy.check(envoyRequest);
envoy.close();
if (envoyProbe.status?.code !== 0 || envoyProbe.httpResponse.case !== "okResponse") {
  throw new Error(`the bench ext_authz Check is not allowed: ${JSON.stringify(envoyProbe.status)}`);
}

const noop = await startNoopServer([EXT_AUTHZ_PATH]);
const base = `http://${address}`;
const ownCpu = () => server.cpuMicros();
const envoyBody = grpcFrame(toBinary(EnvoyCheckRequestSchema, envoyRequest));
const targets = [
  { label: "Check (API key, allow)", url: `${base}/verdict.v1.DecisionService/Check`, body: grpcFrame(toBinary(CheckRequestSchema, checkRequest)), cpu: ownCpu },
  { label: "ext_authz Check (allow)", url: `${base}${EXT_AUTHZ_PATH}`, body: envoyBody, cpu: ownCpu },
  { label: "no-op (grpc-js, own process)", url: `http://${noop.address}${EXT_AUTHZ_PATH}`, body: envoyBody, cpu: () => noop.cpuMicros() },
];

console.log(
  `bench/ext-authz: ${ROUNDS} rounds x ${SECONDS}s per target, h2load -c ${CLIENTS} -m ${STREAMS}, store ${server.storeDriver}, ` +
    `request bytes: Check ${targets[0].body.length - 5}, ext_authz ${targets[1].body.length - 5}`,
);
/** One h2load run and the server's CPU time per call during it (each server in its own process, from /proc). */
type Measured = LoadResult & { readonly cpuMicrosPerCall: number };
const results = new Map<string, Measured[]>();
for (let round = 1; round <= ROUNDS; round++) {
  for (const t of round % 2 === 1 ? targets : [...targets].reverse()) {
    const before = t.cpu();
    const load = await h2load({ ...t, seconds: SECONDS, clients: CLIENTS, streamsPerClient: STREAMS });
    const cpu = t.cpu() - before;
    // h2load's warm-up second is not in `succeeded`; the CPU time includes it: one more second of calls.
    const r: Measured = { ...load, cpuMicrosPerCall: cpu / (load.succeeded + load.requestsPerSecond) };
    console.log(`round ${round}  ${formatRow(r)}   server CPU ${r.cpuMicrosPerCall.toFixed(0)} us/call`);
    results.set(t.label, [...(results.get(t.label) ?? []), r]);
  }
}
const med = (label: string, f: (r: Measured) => number) => median(results.get(label)!.map(f));
const summary = (name: string, label: string) =>
  `median ${name.padEnd(10)} ${med(label, (r) => r.requestsPerSecond).toFixed(0)} calls/s  p50 ${med(label, (r) => r.p50Ms).toFixed(2)} ms  ` +
  `p99 ${med(label, (r) => r.p99Ms).toFixed(2)} ms  p99.9 ${med(label, (r) => r.p999Ms).toFixed(2)} ms  max ${med(label, (r) => r.maxMs).toFixed(2)} ms  ` +
  `server CPU ${med(label, (r) => r.cpuMicrosPerCall).toFixed(0)} us/call`;
const [plain, extAuthz, noopLabel] = targets.map((t) => t.label);
const ratio = med(extAuthz, (r) => r.requestsPerSecond) / med(plain, (r) => r.requestsPerSecond);
const cpuRatio = med(plain, (r) => r.cpuMicrosPerCall) / med(extAuthz, (r) => r.cpuMicrosPerCall);
const toNoop = (label: string, f: (r: Measured) => number) => (med(label, f) / med(noopLabel, f)).toFixed(2);
console.log("");
console.log(summary("Check", plain));
console.log(summary("ext_authz", extAuthz));
console.log(summary("no-op", noopLabel));
console.log(`ratio ext_authz / Check throughput: ${ratio.toFixed(3)} (target >= ${TARGET_RATIO})`);
console.log(`ratio Check / ext_authz server CPU per call: ${cpuRatio.toFixed(3)}`);
console.log(
  `ext_authz / no-op: throughput ${toNoop(extAuthz, (r) => r.requestsPerSecond)}, p99 ${toNoop(extAuthz, (r) => r.p99Ms)}, max ${toNoop(extAuthz, (r) => r.maxMs)}; ` +
    `Check / no-op: throughput ${toNoop(plain, (r) => r.requestsPerSecond)}, p99 ${toNoop(plain, (r) => r.p99Ms)}, max ${toNoop(plain, (r) => r.maxMs)}`,
);
await noop.close();
await server.close();
rmSync(rulesDir, { recursive: true, force: true });
process.exit(0);
