/**
 * bench/rate-limits-fleet: the overshoot of a fleet-wide limit. Three replica processes share
 * counts through Redis; one API key with a limit of LIMIT a minute is driven at three times that
 * rate, spread evenly over the replicas, for one minute; prints what the fleet admitted.
 *
 *   npx tsc -p tsconfig.build.json && DATABASE_URL=postgres://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379 \
 *     node dist/bench/rate-limits-fleet.js          (LIMIT=1000 SYNC_MS=50 UNEVEN=0: UNEVEN=1 sends 80% to one replica)
 */
import { randomBytes } from "node:crypto";
import { AdminService } from "../gen/verdict/v1/admin_pb.js";
import { DecisionService } from "../gen/verdict/v1/decision_pb.js";
import { grpcClient } from "../test/helpers/grpc.js";
import { buildReplica, replicaEnv, spawnReplica } from "../test/helpers/replica-process.js";
import { ROOT_PASSWORD, dropSchema, freshSchema } from "../test/helpers/verdict.js";

const LIMIT = Number(process.env.LIMIT ?? 1000);
const SYNC_MS = process.env.SYNC_MS ?? "50";
const UNEVEN = process.env.UNEVEN === "1";
const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const root = { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString("base64")}` };
const schema = freshSchema();
const run = randomBytes(4).toString("hex");
const build = await buildReplica("bench-fleet");
const env = replicaEnv({
  DATABASE_URL: databaseUrl,
  VERDICT_DATABASE_SCHEMA: schema,
  REDIS_URL: redisUrl,
  VERDICT_REDIS_CHANNEL: `verdict:bench:${run}`,
  VERDICT_RATE_LIMIT_REDIS_PREFIX: `verdict:bench:${run}:rl`,
  VERDICT_RATE_LIMIT_SYNC_MS: SYNC_MS,
  VERDICT_AUDIT_DECISIONS: "false",
});
const first = await spawnReplica("A", build.main, env);
const ready = async (base: string) => {
  for (let i = 0; i < 300 && (await fetch(`${base}/readyz`).catch(() => undefined))?.status !== 200; i++) await new Promise((r) => setTimeout(r, 100));
};
await ready(first.httpBase);
const procs = [first, ...(await Promise.all([spawnReplica("B", build.main, env), spawnReplica("C", build.main, env)]))];
for (const p of procs) await ready(p.httpBase);
const admin = grpcClient(AdminService, first.grpcAddress);
await admin.createTenant({ id: "bench" }, root);
await admin.createUser({ username: "bench-user", password: "bench-user-password" }, root);
await admin.grant({ tenant: "bench", statement: "GRANT READ TO bench-user" }, root);
const key = await admin.createApiKey({ name: "bench", owner: "bench-user" }, root);
await admin.setRateLimit({ target: { target: { case: "keyId", value: key.apiKey!.id } }, limit: { perMinute: LIMIT, perHour: 0 } }, root);
const clients = procs.map((p) => grpcClient(DecisionService, p.grpcAddress));
const { version } = await admin.getPolicyVersion({}, root).then((v) => ({ version: v.committedVersion }));
for (const c of clients) await c.check({ credential: key.secret, action: "read:orders", tenant: "bench", cost: 0, minVersion: version });
await new Promise((r) => setTimeout(r, 1000));

const total = LIMIT * 3;
const gapMs = 60_000 / total;
const started = performance.now();
const answers: Array<Promise<boolean>> = [];
const perReplica = [0, 0, 0];
for (let i = 0; i < total; i++) {
  const at = started + i * gapMs;
  const wait = at - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  if (performance.now() - started >= 60_000) break;
  const r = UNEVEN ? (i % 10 < 8 ? 0 : 1 + (i % 2)) : i % 3;
  answers.push(clients[r].check({ credential: key.secret, action: "read:orders", tenant: "bench" }).then((a) => (a.allowed && perReplica[r]++, a.allowed)));
}
const settled = await Promise.all(answers);
const admitted = settled.filter(Boolean).length;
console.log(
  `limit ${LIMIT}/min, sync every ${SYNC_MS} ms, ${UNEVEN ? "uneven (80/10/10)" : "even"} load: ${settled.length} Checks in 60 s, ` +
    `${admitted} admitted (${(((admitted - LIMIT) / LIMIT) * 100).toFixed(1)}% vs the limit), per replica ${perReplica.join(" / ")}`,
);
for (const c of [admin, ...clients]) c.close();
await Promise.all(procs.map((p) => p.stop()));
await dropSchema(schema);
process.exit(0);
