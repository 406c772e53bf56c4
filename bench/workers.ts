/**
 * bench/workers: Check throughput of VERDICT_WORKERS=2 against VERDICT_WORKERS=1, side by side in
 * one run: two real `node dist/src/main.js` processes on the machine's Postgres (fresh schemas),
 * loaded in turn by h2load with the same allowed Check by API key, rounds interleaved. Prints each
 * round with the CPU each server process used (primary and workers, from /proc), the medians, the
 * ratio (target >= 1.5 on 2 cores) and the load average before and after.
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/workers.js     (ROUNDS=3 SECONDS=8 CLIENTS=8 STREAMS=8)
 */
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { AdminService } from "../gen/verdict/v1/admin_pb.js";
import { CheckRequestSchema, DecisionService } from "../gen/verdict/v1/decision_pb.js";
import { grpcClient } from "../test/helpers/grpc.js";
import { type ReplicaProcess, replicaEnv, scrapeMetrics, spawnReplica } from "../test/helpers/replica-process.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema } from "../test/helpers/verdict.js";
import { type LoadResult, formatRow, grpcFrame, h2load, median } from "./h2load.js";

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SECONDS = Number(process.env.SECONDS ?? 8);
const CLIENTS = Number(process.env.CLIENTS ?? 8);
const STREAMS = Number(process.env.STREAMS ?? 8);
const MAIN = fileURLToPath(new URL("../src/main.js", import.meta.url));
const ROOT = { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString("base64")}` };

/** RSS in MiB of a process and of each of its children (the workers). */
function rss(pid: number): { own: number; children: number[] } {
  const of = (p: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, "utf8"))?.[1] ?? NaN) / 1024;
  const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  return { own: of(pid), children: kids.map(of) };
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU seconds of a process and of each of its children, in that order. */
function cpuOfTree(pid: number): number[] {
  const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  return [pid, ...kids].map(cpuSeconds);
}

interface Target {
  readonly label: string;
  readonly workers: number;
  readonly proc: ReplicaProcess;
  readonly schema: string;
  readonly body: Buffer;
}

async function start(workers: number): Promise<Target> {
  const schema = freshSchema();
  const proc = await spawnReplica(
    `workers-${workers}`,
    MAIN,
    replicaEnv({ VERDICT_WORKERS: String(workers), DATABASE_URL: TEST_DATABASE_URL, VERDICT_DATABASE_SCHEMA: schema, VERDICT_AUDIT_DECISIONS: "false" }),
  );
  for (;;) {
    const m = await scrapeMetrics(proc.httpBase).catch(() => new Map<string, number>());
    const listed = [...m.keys()].filter((k) => k.startsWith("verdict_worker_info")).length;
    if (m.get("verdict_ready") === 1 && (workers === 1 || listed === workers)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const admin = grpcClient(AdminService, proc.grpcAddress);
  await admin.createTenant({ id: "bench" }, ROOT);
  await admin.createUser({ username: "bench-user", password: "bench-user-password" }, ROOT);
  await admin.putRole({ name: "bench-role", permissions: ["read:orders"] }, ROOT);
  await admin.bindRole({ tenant: "bench", user: "bench-user", role: "bench-role" }, ROOT);
  const key = await admin.createApiKey({ name: "bench", owner: "bench-user" }, ROOT);
  admin.close();
  const request = create(CheckRequestSchema, { credential: key.secret, action: "read:orders", tenant: "bench", minVersion: key.version });
  // Every worker must allow it before the load (min_version makes a lagging one catch up).
  for (let i = 0; i < 8; i++) {
    const decision = grpcClient(DecisionService, proc.grpcAddress, { "grpc.use_local_subchannel_pool": 1 });
    const d = await decision.check(request);
    decision.close();
    if (!d.allowed) throw new Error(`the bench Check is not allowed on ${workers} worker(s)`);
  }
  const body = grpcFrame(toBinary(CheckRequestSchema, create(CheckRequestSchema, { credential: key.secret, action: "read:orders", tenant: "bench" })));
  return { label: `Check, ${workers} worker${workers > 1 ? "s" : ""}`, workers, proc, schema, body };
}

const load = () => loadavg().map((l) => l.toFixed(2)).join(" ");
console.log(`bench/workers: ${ROUNDS} rounds x ${SECONDS}s per target, h2load -c ${CLIENTS} -m ${STREAMS}; load average before: ${load()}`);
const targets = [await start(1), await start(2)];
try {
  for (const t of targets) {
    const r = rss(t.proc.child.pid!);
    console.log(`${t.label}: RSS primary ${r.own.toFixed(0)} MiB, workers ${r.children.map((c) => c.toFixed(0)).join(" + ") || "(none)"} MiB before load`);
  }
  const results = new Map<string, LoadResult[]>();
  for (let round = 1; round <= ROUNDS; round++) {
    for (const t of round % 2 ? targets : [...targets].reverse()) {
      const cpu0 = cpuOfTree(t.proc.child.pid!);
      const r = await h2load({ label: t.label, url: `http://${t.proc.grpcAddress}/verdict.v1.DecisionService/Check`, body: t.body, seconds: SECONDS, clients: CLIENTS, streamsPerClient: STREAMS });
      const cpu = cpuOfTree(t.proc.child.pid!).map((c, i) => ((c - (cpu0[i] ?? 0)) / (SECONDS + 1)) * 100);
      console.log(`round ${round}  ${formatRow(r)}   CPU ${cpu.map((c) => `${c.toFixed(0)}%`).join(" + ")}`);
      results.set(t.label, [...(results.get(t.label) ?? []), r]);
    }
  }
  const med = (t: Target) => median(results.get(t.label)!.map((r) => r.requestsPerSecond));
  for (const t of targets) {
    const r = rss(t.proc.child.pid!);
    console.log(`median ${t.label}: ${med(t).toFixed(0)} calls/s; RSS primary ${r.own.toFixed(0)} MiB, workers ${r.children.map((c) => c.toFixed(0)).join(" + ") || "(none)"} MiB after load`);
  }
  console.log(`ratio 2 workers / 1 worker: ${(med(targets[1]) / med(targets[0])).toFixed(2)} (target >= 1.5); load average after: ${load()}`);
} finally {
  for (const t of targets) {
    await t.proc.stop();
    await dropSchema(t.schema);
  }
}
process.exit(0);
