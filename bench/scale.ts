/**
 * One replica with 1,000,000 API keys and 10,000 roles (issue 4): rows inserted straight into
 * Postgres with generate_series, then a replica process is started on them. Prints its RSS, the
 * cold load time (process start until /readyz answers 200), and the time to apply one change (a key revoked behind its back, then found through a
 * Check carrying min_version; the engine's own catch-up duration is read from /metrics).
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/scale.js [keys=1000000] [roles=10000]
 *
 * WORKERS=2 starts it with VERDICT_WORKERS=2 and prints the RSS of the primary and of each worker.
 */
import { readFileSync } from "node:fs";
import pg from "pg";
import { fileURLToPath } from "node:url";
import { DecisionService } from "../gen/verdict/v1/decision_pb.js";
import { Reason } from "../gen/verdict/v1/types_pb.js";
import { mintApiKey } from "../src/authn/api-key.js";
import { createPostgresStore } from "../src/store/postgres.js";
import { grpcClient } from "../test/helpers/grpc.js";
import { replicaEnv, scrapeMetrics, spawnReplica } from "../test/helpers/replica-process.js";
import { TEST_DATABASE_URL, dropSchema, freshSchema } from "../test/helpers/verdict.js";

const KEYS = Number(process.argv[2] ?? 1_000_000);
const ROLES = Number(process.argv[3] ?? 10_000);
const USERS = 10_000;
const WORKERS = Number(process.env.WORKERS ?? 1);
const MAIN = fileURLToPath(new URL("../src/main.js", import.meta.url));

/** The process ids of a process's children (a primary's workers). */
function children(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function main(): Promise<void> {
  const schema = freshSchema();
  const store = createPostgresStore({ connectionString: TEST_DATABASE_URL, schema });
  const proc = { stop: async () => {} };
  try {
    await store.migrate();
    let t = performance.now();
    await store.createTenant({ id: "acme", displayName: "", disabled: false, createdAtMs: 0 }, { userId: "system" });
    const sql = new pg.Client({ connectionString: TEST_DATABASE_URL, options: `-c search_path=${schema}` });
    await sql.connect();
    await sql.query(`
      INSERT INTO roles (name, permissions) SELECT 'role-' || g, ARRAY['read:res' || g, 'write:res' || g, 'list:*'] FROM generate_series(1, ${ROLES}) g;
      INSERT INTO users (id, username, password_hash, created_at) SELECT 'u' || g, 'user-' || g, 'x', 0 FROM generate_series(1, ${USERS}) g;
      INSERT INTO role_bindings (tenant, user_id, role) SELECT 'acme', 'u' || g, 'role-' || (1 + g % ${ROLES}) FROM generate_series(1, ${USERS}) g;
      INSERT INTO api_keys (id, name, owner_user_id, permissions, tenant, secret_hash, created_at)
        SELECT lpad(to_hex(g), 12, '0'), 'key-' || g, 'u' || (1 + g % ${USERS}), '{}', '', md5(g::text) || md5('s' || g::text), 0
        FROM generate_series(1, ${KEYS}) g;
      ANALYZE;`);
    await sql.end();
    console.log(`inserted ${KEYS} keys, ${ROLES} roles, ${USERS} users in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    // One real key, so a Check can tell when the change is applied.
    const minted = mintApiKey();
    await store.createApiKey(
      { id: minted.id, name: "probe", ownerUserId: "u1", permissions: [], tenant: "", secretHash: minted.secretHash, createdAtMs: 0, expiresAtMs: 0, revokedAtMs: 0, lastUsedAtMs: 0 },
      { userId: "system" },
    );

    t = performance.now();
    const replica = await spawnReplica("scale", MAIN, replicaEnv({ DATABASE_URL: TEST_DATABASE_URL, VERDICT_DATABASE_SCHEMA: schema, VERDICT_POLL_INTERVAL_MS: "600000", VERDICT_WORKERS: String(WORKERS) }));
    proc.stop = () => replica.stop();
    while ((await fetch(`${replica.httpBase}/readyz`).catch(() => undefined))?.status !== 200) await new Promise((r) => setTimeout(r, 20));
    // With workers, ready means every worker has loaded (verdict_ready is the lowest worker's).
    for (;;) {
      const m = await scrapeMetrics(replica.httpBase);
      const listed = [...m.keys()].filter((k) => k.startsWith("verdict_worker_info")).length;
      if (m.get("verdict_ready") === 1 && (WORKERS === 1 || listed === WORKERS)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const cold = performance.now() - t;
    const m0 = await scrapeMetrics(replica.httpBase);
    await new Promise((r) => setTimeout(r, 1000));
    console.log(`cold start to ready: ${(cold / 1000).toFixed(2)} s; RSS after load: ${rssMiB(replica.child.pid!).toFixed(0)} MiB; keys cached: ${m0.get('verdict_cache_entries{kind="apiKeys"}')}`);
    if (WORKERS > 1) {
      const workers = children(replica.child.pid!).map(rssMiB);
      const total = rssMiB(replica.child.pid!) + workers.reduce((a, b) => a + b, 0);
      console.log(`${WORKERS} workers: primary ${rssMiB(replica.child.pid!).toFixed(0)} MiB, workers ${workers.map((w) => w.toFixed(0)).join(" + ")} MiB, total ${total.toFixed(0)} MiB`);
    }

    const decision = grpcClient(DecisionService, replica.grpcAddress);
    const ask = (minVersion: bigint) => decision.check({ credential: minted.secret, action: "read:res2", tenant: "acme", minVersion });
    const applyMs: number[] = [];
    const rpcMs: number[] = [];
    for (let i = 0; i < 20; i++) {
      const before = await scrapeMetrics(replica.httpBase);
      // Revoking again keeps the first revocation time but still commits a version and a change.
      const { version } = await store.revokeApiKey(minted.id, Date.now(), { userId: "system" });
      const t0 = performance.now();
      const d = await ask(BigInt(version));
      rpcMs.push(performance.now() - t0);
      if (d.policyVersion < BigInt(version) || d.reason !== Reason.REVOKED) throw new Error(`change not applied: ${Reason[d.reason]}`);
      const after = await scrapeMetrics(replica.httpBase);
      const sum = "verdict_catch_up_duration_seconds_sum";
      applyMs.push(((after.get(sum) ?? 0) - (before.get(sum) ?? 0)) * 1000);
    }
    applyMs.sort((a, b) => a - b);
    rpcMs.sort((a, b) => a - b);
    console.log(`one change applied (engine catch-up: change log read + row reload + apply), 20 changes: p50 ${applyMs[10].toFixed(2)} ms, max ${applyMs[19].toFixed(2)} ms`);
    console.log(`Check with min_version of that change (RPC round trip including the catch-up): p50 ${rpcMs[10].toFixed(2)} ms, max ${rpcMs[19].toFixed(2)} ms`);
    console.log(`RSS at the end: ${rssMiB(replica.child.pid!).toFixed(0)} MiB`);
    decision.close();
  } finally {
    await proc.stop();
    await store.close();
    await dropSchema(schema);
  }
}

await main();
process.exit(0);
