/**
 * Propagation across replicas (issue 4): three replica processes on the machine's Postgres and
 * Redis; for each of N API keys, the time from RevokeApiKey returning on replica A until B and C
 * both deny it. Run once with Redis up (the bus carries the change) and once with Redis cut at a
 * TCP proxy (replicas find the change by polling, default interval 1 s). Prints p50 / p99 / max.
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/propagation.js [revocations=200]
 *
 * Env: TEST_DATABASE_URL, TEST_REDIS_URL (the machine's servers by default),
 * VERDICT_POLL_INTERVAL_MS (default 1000).
 */
import { fileURLToPath } from "node:url";
import { AdminService } from "../gen/verdict/v1/admin_pb.js";
import { DecisionService } from "../gen/verdict/v1/decision_pb.js";
import { Reason } from "../gen/verdict/v1/types_pb.js";
import { type TestClient, grpcClient } from "../test/helpers/grpc.js";
import { type ReplicaProcess, replicaEnv, spawnReplica } from "../test/helpers/replica-process.js";
import { startTcpProxy } from "../test/helpers/tcp-proxy.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, TEST_REDIS_URL, dropSchema, freshSchema } from "../test/helpers/verdict.js";

const N = Number(process.argv[2] ?? 200);
const POLL_MS = Number(process.env.VERDICT_POLL_INTERVAL_MS ?? 1000);
const ROOT = { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString("base64")}` };
const MAIN = fileURLToPath(new URL("../src/main.js", import.meta.url));

interface Replica {
  readonly proc: ReplicaProcess;
  readonly admin: TestClient<typeof AdminService>;
  readonly decision: TestClient<typeof DecisionService>;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Asks `r` about the key every millisecond (not in a tight loop: that would starve the replicas of CPU). */
async function untilDenied(r: Replica, secret: string, since: number): Promise<number> {
  for (;;) {
    const d = await r.decision.check({ credential: secret, action: "read:orders", tenant: "acme" });
    if (d.reason === Reason.REVOKED) return performance.now() - since;
    if (performance.now() - since > 30_000) throw new Error(`${r.proc.name} never denied the key`);
    await new Promise((res) => setTimeout(res, 1));
  }
}

async function main(): Promise<void> {
  const schema = freshSchema();
  const redis = new URL(TEST_REDIS_URL);
  const proxy = await startTcpProxy(redis.hostname, Number(redis.port || 6379));
  const procs: ReplicaProcess[] = [];
  const start = async (name: string): Promise<Replica> => {
    const env = replicaEnv({
      DATABASE_URL: TEST_DATABASE_URL,
      VERDICT_DATABASE_SCHEMA: schema,
      REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
      VERDICT_REDIS_CHANNEL: `verdict:bench:${schema}`,
      VERDICT_POLL_INTERVAL_MS: String(POLL_MS),
    });
    const proc = await spawnReplica(name, MAIN, env);
    procs.push(proc);
    const r = { proc, admin: grpcClient(AdminService, proc.grpcAddress), decision: grpcClient(DecisionService, proc.grpcAddress) };
    for (;;) {
      if ((await fetch(`${proc.httpBase}/readyz`)).status === 200) return r;
      await new Promise((res) => setTimeout(res, 50));
    }
  };
  try {
    const A = await start("A");
    const [B, C] = await Promise.all([start("B"), start("C")]);
    await A.admin.createTenant({ id: "acme" }, ROOT);
    await A.admin.createUser({ username: "alice", password: "alice-password-1" }, ROOT);
    await A.admin.bindRole({ tenant: "acme", user: "alice", role: "READ" }, ROOT);
    const keys: Array<{ id: string; secret: string }> = [];
    let version = 0n;
    for (let i = 0; i < 2 * N; i++) {
      const k = await A.admin.createApiKey({ name: `k${i}`, owner: "alice" }, ROOT);
      keys.push({ id: k.apiKey!.id, secret: k.secret });
      version = k.version;
    }
    for (const r of [B, C]) await r.decision.check({ credential: keys[0].secret, action: "read:orders", tenant: "acme", minVersion: version });

    const phase = async (label: string, batch: typeof keys, jitterMs: number) => {
      const both: number[] = [];
      for (const key of batch) {
        // A random pause, so that revocations do not fall at one fixed point of the poll cycle.
        await new Promise((res) => setTimeout(res, Math.random() * jitterMs));
        await A.admin.revokeApiKey({ id: key.id }, ROOT);
        const returned = performance.now();
        const [b, c] = await Promise.all([untilDenied(B, key.secret, returned), untilDenied(C, key.secret, returned)]);
        both.push(Math.max(b, c));
      }
      both.sort((x, y) => x - y);
      const f = (x: number) => x.toFixed(2).padStart(8);
      console.log(`${label.padEnd(34)} n=${both.length}  p50 ${f(percentile(both, 50))} ms  p99 ${f(percentile(both, 99))} ms  max ${f(both[both.length - 1])} ms`);
    };
    console.log(`propagation: RevokeApiKey returned on A -> both B and C deny (poll interval ${POLL_MS} ms)`);
    await phase("Redis up (bus)", keys.slice(0, N), 20);
    await proxy.cut();
    await new Promise((r) => setTimeout(r, 200));
    await phase("Redis cut (polling)", keys.slice(N), POLL_MS);
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await proxy.close();
    await dropSchema(schema);
    // Test clients keep sockets open; the measurement is done.
    process.exit(process.exitCode ?? 0);
  }
}

await main();
