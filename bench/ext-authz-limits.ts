/**
 * bench/ext-authz-limits: what route rate limits cost ext_authz, side by side in one run. Two
 * servers in this process, the same bench principal and the same Envoy request (API key,
 * read:orders, allow) but for the path:
 *   - "no rateLimits": a rules file without the section (the path as before route limits);
 *   - "route without limit": a rules file with route limits, on a path none of them matches (the
 *     client address is decoded, the entries are walked, nothing is counted or allocated for it);
 *   - "route with limit": the same file, on a path with a limit (1e9/min: never denies), counted per
 *     key and route.
 * The key's own limits are on in all three (1e9 a minute and an hour: counted, never denying).
 * Each target is measured in process (decode + handler, no transport: batches interleaved across
 * the targets, min and median per call) and under h2load from a separate process (rounds alternate
 * the order; medians compared). On a loaded machine the in-process minimum is the steadiest figure.
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/ext-authz-limits.js
 *   (BATCHES=40 BATCH=5000 ROUNDS=3 SECONDS=5 CLIENTS=4 STREAMS=32; DATABASE_URL: Postgres in fresh schemas)
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { toBinary } from "@bufbuild/protobuf";
import { Authorization, CheckRequestSchema as EnvoyCheckRequestSchema } from "../gen/envoy/service/auth/v3/external_auth_pb.js";
import { createExtAuthzHandler } from "../src/api/envoy/ext-authz.js";
import { headerNamesRead } from "../src/api/envoy/request.js";
import { parseRules } from "../src/api/envoy/rules/parse.js";
import { decodeCheckRequest, selectHeaders } from "../src/api/envoy/wire.js";
import { grpcClient } from "../test/helpers/grpc.js";
import { envoyBenchRequest } from "./envoy-request.js";
import { type BenchServer, startBenchServer } from "./server.js";
import { formatRow, grpcFrame, h2load, median, type LoadResult } from "./h2load.js";

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SECONDS = Number(process.env.SECONDS ?? 5);
const BATCHES = Number(process.env.BATCHES ?? 40);
const BATCH = Number(process.env.BATCH ?? 5000);
const CLIENTS = Number(process.env.CLIENTS ?? 4);
const STREAMS = Number(process.env.STREAMS ?? 32);

const RULES = [
  "rules:",
  "  - { match: GET /v1/orders/*, action: read:orders }",
  "  - { match: GET /v1/invoices/*, action: read:invoices }",
  "exempt: [/healthz]",
  "",
].join("\n");
const LIMITED_RULES = `${RULES}rateLimits:\n  routes:\n    /v1/chat/*: 30/min\n    POST /v1/login: 10/min burst 5\n    /v1/invoices/*: 1000000000/min\n    /healthz: none\n`;

const dir = mkdtempSync(join(tmpdir(), "verdict-bench-limits-"));
const write = (name: string, text: string): string => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
// Credential limits on in every target (as deployed), too high to deny: the route limit is the difference.
// No decision audit: its sampled lines would be written to this process's stdout.
const SERVER_ENV = { VERDICT_RATE_LIMIT_PER_MINUTE: "1000000000", VERDICT_RATE_LIMIT_PER_HOUR: "1000000000", VERDICT_AUDIT_DECISIONS: "false" };
const plainServer = await startBenchServer({ ...SERVER_ENV, VERDICT_EXT_AUTHZ_RULES: write("plain.yaml", RULES) });
const limitedServer = await startBenchServer({ ...SERVER_ENV, VERDICT_EXT_AUTHZ_RULES: write("limited.yaml", LIMITED_RULES) });

interface Target {
  readonly label: string;
  readonly server: BenchServer;
  readonly rules: string;
  readonly bytes: Uint8Array;
}
const targets: Target[] = [
  { label: "no rateLimits", server: plainServer, rules: RULES, bytes: toBinary(EnvoyCheckRequestSchema, envoyBenchRequest(plainServer.apiKey, "/v1/orders/42?expand=items")) },
  { label: "route without limit", server: limitedServer, rules: LIMITED_RULES, bytes: toBinary(EnvoyCheckRequestSchema, envoyBenchRequest(limitedServer.apiKey, "/v1/orders/42?expand=items")) },
  { label: "route with limit", server: limitedServer, rules: LIMITED_RULES, bytes: toBinary(EnvoyCheckRequestSchema, envoyBenchRequest(limitedServer.apiKey, "/v1/invoices/42?expand=items")) },
];

for (const t of targets) {
  const client = grpcClient(Authorization, t.server.address);
  const answer = await client.check(envoyBenchRequest(t.server.apiKey, t === targets[2] ? "/v1/invoices/42" : "/v1/orders/42"));
  client.close();
  if (answer.status?.code !== 0) throw new Error(`${t.label}: the bench request is not allowed: ${JSON.stringify(answer.status)}`);
}

/** Decode + handler in this process against the server's own engine (synchronous decisions), in batches. */
function inProcess(t: Target) {
  const rules = parseRules(t.rules);
  const selection = selectHeaders(headerNamesRead(rules), rules.rateLimits.count > 0);
  const check = createExtAuthzHandler({ decider: t.server.verdict.engine, rules });
  const buffer = Buffer.from(t.bytes);
  /** Microseconds per call over `calls` calls. */
  return async (calls: number): Promise<number> => {
    const started = performance.now();
    for (let i = 0; i < calls; i++) await check(decodeCheckRequest(buffer, selection), rules);
    return ((performance.now() - started) * 1000) / calls;
  };
}

console.log(
  `bench/ext-authz-limits: in process ${BATCHES} interleaved batches of ${BATCH} calls per target; ` +
    `h2load -c ${CLIENTS} -m ${STREAMS}, ${ROUNDS} rounds of ${SECONDS}s per target; store ${plainServer.storeDriver}`,
);
const runners = targets.map(inProcess);
for (const run of runners) await run(5000);
const local = new Map<string, number[]>();
for (let batch = 0; batch < BATCHES; batch++) {
  for (let k = 0; k < targets.length; k++) {
    const i = (batch + k) % targets.length;
    local.set(targets[i].label, [...(local.get(targets[i].label) ?? []), await runners[i](BATCH)]);
  }
}
const loaded = new Map<string, LoadResult[]>();
for (let round = 1; round <= ROUNDS; round++) {
  for (const t of round % 2 === 1 ? targets : [...targets].reverse()) {
    const r = await h2load({
      label: t.label,
      url: `http://${t.server.address}/envoy.service.auth.v3.Authorization/Check`,
      body: grpcFrame(t.bytes),
      seconds: SECONDS,
      clients: CLIENTS,
      streamsPerClient: STREAMS,
    });
    console.log(`round ${round}  ${formatRow(r)}`);
    loaded.set(t.label, [...(loaded.get(t.label) ?? []), r]);
  }
}

console.log("");
const base = targets[0].label;
const us = (label: string, f: (v: number[]) => number) => f(local.get(label)!);
const min = (v: number[]) => Math.min(...v);
for (const t of targets) {
  const h2 = median(loaded.get(t.label)!.map((r) => r.requestsPerSecond));
  console.log(
    `${t.label.padEnd(20)} in process: min ${us(t.label, min).toFixed(2)} us/call (ratio ${(us(base, min) / us(t.label, min)).toFixed(3)}), ` +
      `median ${us(t.label, median).toFixed(2)} us/call (ratio ${(us(base, median) / us(t.label, median)).toFixed(3)});  ` +
      `h2load median ${h2.toFixed(0)} calls/s (ratio ${(h2 / median(loaded.get(base)!.map((r) => r.requestsPerSecond))).toFixed(3)})`,
  );
}
await plainServer.close();
await limitedServer.close();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
