/**
 * bench/tokens: Check with a repeated JWT against Check with an API key on the same server in the
 * same run (h2load from a separate process), the in-process cost of a first-seen token against a
 * cached one, and Check latency while logins (argon2id at the configured cost) run alongside.
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/tokens.js
 *   (ROUNDS=3 SECONDS=5 CLIENTS=4 STREAMS=32 FRESH_TOKENS=300 LOGIN_STREAMS=4 to tune)
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { performance } from "node:perf_hooks";
import { AuthService, LoginRequestSchema } from "../gen/verdict/v1/auth_pb.js";
import { CheckRequestSchema, DecisionService } from "../gen/verdict/v1/decision_pb.js";
import { Reason } from "../gen/verdict/v1/types_pb.js";
import { grpcClient } from "../test/helpers/grpc.js";
import { type LoadResult, formatRow, grpcFrame, h2load, median } from "./h2load.js";
import { BENCH_USER_PASSWORD, startBenchServer } from "./server.js";

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SECONDS = Number(process.env.SECONDS ?? 5);
const CLIENTS = Number(process.env.CLIENTS ?? 4);
const STREAMS = Number(process.env.STREAMS ?? 32);
const FRESH_TOKENS = Number(process.env.FRESH_TOKENS ?? 300);
const LOGIN_STREAMS = Number(process.env.LOGIN_STREAMS ?? 4);
const USER_PASSWORD = BENCH_USER_PASSWORD;
const server = await startBenchServer();
const { verdict, address, apiKey: secret } = server;

const auth = grpcClient(AuthService, address);
const loginRequest = create(LoginRequestSchema, { username: "bench-user", password: USER_PASSWORD, tenant: "bench" });
const session = (await auth.login(loginRequest)).tokens!;

// Distinct tokens for the first-seen measurement: each refresh signs a new access token.
const fresh: string[] = [];
let refreshToken = session.refreshToken;
for (let i = 0; i < FRESH_TOKENS; i++) {
  const next = (await auth.refresh({ refreshToken })).tokens!;
  fresh.push(next.accessToken);
  refreshToken = next.refreshToken;
}
auth.close();

const keyRequest = create(CheckRequestSchema, { credential: secret, action: "read:orders", tenant: "bench" });
const jwtRequest = create(CheckRequestSchema, { credential: session.accessToken, action: "read:orders", tenant: "bench" });
const decision = grpcClient(DecisionService, address);
for (const req of [keyRequest, jwtRequest]) {
  const probe = await decision.check(req);
  if (!probe.allowed) throw new Error(`the bench Check is not allowed: ${Reason[probe.reason]}`);
}
decision.close();

// In process: the engine's Check for tokens never seen before, then for the same tokens again.
const timeChecks = (tokens: readonly string[]): number => {
  const started = performance.now();
  for (const token of tokens) {
    const d = verdict.engine.check(token, "read:orders", "bench");
    if (d instanceof Promise || !d.allowed) throw new Error("a fresh token was not allowed synchronously");
  }
  return ((performance.now() - started) * 1000) / tokens.length;
};
const firstSeenUs = timeChecks(fresh);
const cachedUs = median([timeChecks(fresh), timeChecks(fresh), timeChecks(fresh)]);
const keyUs = median([1, 2, 3].map(() => timeChecks(Array.from({ length: FRESH_TOKENS }, () => secret))));

const base = `http://${address}`;
const checkUrl = `${base}/verdict.v1.DecisionService/Check`;
const targets = [
  { label: "Check (API key)", url: checkUrl, body: grpcFrame(toBinary(CheckRequestSchema, keyRequest)) },
  { label: "Check (JWT, repeated)", url: checkUrl, body: grpcFrame(toBinary(CheckRequestSchema, jwtRequest)) },
];
const loginTarget = { label: "Login (argon2id)", url: `${base}/verdict.v1.AuthService/Login`, body: grpcFrame(toBinary(LoginRequestSchema, loginRequest)) };
const load = { seconds: SECONDS, clients: CLIENTS, streamsPerClient: STREAMS };

console.log(`bench/tokens: ${ROUNDS} rounds x ${SECONDS}s per target, h2load -c ${CLIENTS} -m ${STREAMS}, store ${verdict.store.driver}, argon2 (VERDICT_ARGON2_* or the defaults)`);
const results = new Map<string, LoadResult[]>();
const record = (r: LoadResult, round: number) => {
  console.log(`round ${round}  ${formatRow(r)}`);
  results.set(r.label, [...(results.get(r.label) ?? []), r]);
};
for (let round = 1; round <= ROUNDS; round++) {
  for (const t of targets) record(await h2load({ ...t, ...load }), round);
  const [during, logins] = await Promise.all([
    h2load({ ...targets[1], ...load, label: "Check (JWT) during logins" }),
    h2load({ ...loginTarget, seconds: SECONDS, clients: 1, streamsPerClient: LOGIN_STREAMS }),
  ]);
  record(during, round);
  record(logins, round);
}
const med = (label: string, f: (r: LoadResult) => number) => median(results.get(label)!.map(f));
const line = (label: string) =>
  `${label.padEnd(28)} ${med(label, (r) => r.requestsPerSecond).toFixed(0).padStart(7)} calls/s  p50 ${med(label, (r) => r.p50Ms).toFixed(2)} ms  p99 ${med(label, (r) => r.p99Ms).toFixed(2)} ms`;
console.log("");
for (const label of ["Check (API key)", "Check (JWT, repeated)", "Check (JWT) during logins", "Login (argon2id)"]) console.log(`median ${line(label)}`);
console.log(`ratio Check JWT / Check API key throughput: ${(med("Check (JWT, repeated)", (r) => r.requestsPerSecond) / med("Check (API key)", (r) => r.requestsPerSecond)).toFixed(3)} (target >= 0.9)`);
console.log(`Check p99 during logins / without: ${(med("Check (JWT) during logins", (r) => r.p99Ms) / med("Check (JWT, repeated)", (r) => r.p99Ms)).toFixed(2)}`);
console.log(`in-process engine.check: first-seen token ${firstSeenUs.toFixed(1)} us, cached token ${cachedUs.toFixed(1)} us, API key ${keyUs.toFixed(1)} us (${FRESH_TOKENS} tokens)`);
const stats = verdict.engine.current.sizes();
console.log(`policy sizes ${JSON.stringify(stats)}`);
await server.close();
process.exit(0);
