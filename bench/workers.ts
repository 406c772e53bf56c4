/**
 * bench/workers: Check throughput of VERDICT_WORKERS=2 against VERDICT_WORKERS=1, side by side in
 * one run: real `node dist/src/main.js` processes on the machine's Postgres (fresh schemas), loaded
 * in turn by h2load with the same allowed Check by API key, rounds interleaved (order alternating).
 * Targets:
 *
 * - Verdict, 1 worker (a single process);
 * - Verdict, 2 workers as configured by default (VERDICT_WORKER_GC=auto; the label says which
 *   collector the workers were started with);
 * - Verdict, 2 workers with VERDICT_WORKER_GC=parallel (V8's helper threads kept): what the
 *   setting changes;
 * - the bare grpc-js no-op server (bench/noop-server.ts), as one process and as 2 node:cluster
 *   workers: how much two workers can gain over one on this machine for any grpc-js server.
 *
 * Prints each round with the CPU each server process used (primary and workers, from /proc), the
 * server CPU per call, h2load's own CPU and the hypervisor's steal; then the medians, the ratios
 * (target >= 1.5 on 2 cores) and the load average before and after. Rounds in which the hypervisor
 * stole more than MAX_STEAL percent of a core (10) are printed but left out of the medians, unless
 * a target has no other: on a shared host they measure the neighbours (one such round can take a
 * third of a core from one target and not from the next).
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
import { replicaEnv, scrapeMetrics, spawnReplica } from "../test/helpers/replica-process.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema } from "../test/helpers/verdict.js";
import { type LoadResult, formatRow, grpcFrame, h2load, median } from "./h2load.js";
import { startNoopServer } from "./noop.js";
import { childPids, processTreeCpuMicros } from "./proc.js";

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SECONDS = Number(process.env.SECONDS ?? 8);
const CLIENTS = Number(process.env.CLIENTS ?? 8);
const STREAMS = Number(process.env.STREAMS ?? 8);
/** A round in which the hypervisor stole more than this (percent of one core) measures the host: left out of the medians. */
const MAX_STEAL = Number(process.env.MAX_STEAL ?? 10);
const MAIN = fileURLToPath(new URL("../src/main.js", import.meta.url));
const ROOT = { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString("base64")}` };
const CHECK_PATH = "/verdict.v1.DecisionService/Check";

/** RSS in MiB of a process and of each of its children (the workers). */
function rss(pid: number): { own: number; children: number[] } {
  const of = (p: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, "utf8"))?.[1] ?? NaN) / 1024;
  return { own: of(pid), children: childPids(pid).map(of) };
}

/** The Node flags a running process was started with (its command line before the script). */
function nodeFlags(pid: number): string[] {
  const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").slice(1);
  return args.slice(0, args.findIndex((a) => !a.startsWith("--")));
}

interface Target {
  readonly label: string;
  /** The server process (with workers: the primary). */
  readonly pid: number;
  readonly address: string;
  stop(): Promise<void>;
}

/** A Verdict process with `workers` workers and the allowed Check's request body for it. */
async function startVerdict(workers: number, env: Record<string, string> = {}): Promise<{ target: Target; body: Buffer }> {
  const schema = freshSchema();
  const proc = await spawnReplica(
    `workers-${workers}`,
    MAIN,
    replicaEnv({ VERDICT_WORKERS: String(workers), DATABASE_URL: TEST_DATABASE_URL, VERDICT_DATABASE_SCHEMA: schema, VERDICT_AUDIT_DECISIONS: "false", ...env }),
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
  const pid = proc.child.pid!;
  const gc = workers === 1 ? "" : childPids(pid).every((w) => nodeFlags(w).includes("--single-threaded-gc")) ? ", single-threaded GC" : ", parallel GC";
  const label = `Verdict, ${workers} worker${workers > 1 ? "s" : ""}${gc}`;
  return {
    target: {
      label,
      pid,
      address: proc.grpcAddress,
      async stop() {
        await proc.stop();
        await dropSchema(schema);
      },
    },
    body,
  };
}

async function startNoop(workers: number): Promise<Target> {
  const noop = await startNoopServer([CHECK_PATH], workers);
  return { label: `no-op (grpc-js), ${workers === 1 ? "1 process" : `${workers} workers`}`, pid: noop.pid, address: noop.address, stop: () => noop.close() };
}

const load = () => loadavg().map((l) => l.toFixed(2)).join(" ");
console.log(`bench/workers: ${ROUNDS} rounds x ${SECONDS}s per target, h2load -c ${CLIENTS} -m ${STREAMS}; load average before: ${load()}`);
const one = await startVerdict(1);
const body = one.body;
const targets: Target[] = [
  one.target,
  (await startVerdict(2)).target,
  (await startVerdict(2, { VERDICT_WORKER_GC: "parallel" })).target,
  await startNoop(1),
  await startNoop(2),
];
type Measured = LoadResult & { readonly cpuMicrosPerCall: number };
try {
  for (const t of targets) {
    const r = rss(t.pid);
    console.log(`${t.label}: RSS primary ${r.own.toFixed(0)} MiB, workers ${r.children.map((c) => c.toFixed(0)).join(" + ") || "(none)"} MiB before load`);
  }
  const results = new Map<string, Measured[]>();
  for (let round = 1; round <= ROUNDS; round++) {
    for (const t of round % 2 ? targets : [...targets].reverse()) {
      const cpu0 = processTreeCpuMicros(t.pid);
      const started = performance.now();
      const r = await h2load({ label: t.label, url: `http://${t.address}${CHECK_PATH}`, body, seconds: SECONDS, clients: CLIENTS, streamsPerClient: STREAMS });
      const wallMicros = (performance.now() - started) * 1000;
      const cpu = processTreeCpuMicros(t.pid).map((c, i) => c - (cpu0[i] ?? 0));
      const calls = r.requestsPerSecond * (wallMicros / 1e6);
      const measured = { ...r, cpuMicrosPerCall: cpu.reduce((a, b) => a + b, 0) / calls };
      console.log(
        `round ${round}  ${formatRow(r)}${r.stealPercent > MAX_STEAL ? " (steal: not counted)" : ""}   server CPU ${cpu.map((c) => `${((c / wallMicros) * 100).toFixed(0)}%`).join(" + ")}, ${measured.cpuMicrosPerCall.toFixed(0)} us/call`,
      );
      results.set(t.label, [...(results.get(t.label) ?? []), measured]);
    }
  }
  const counted = (t: Target) => {
    const all = results.get(t.label)!;
    const clean = all.filter((r) => r.stealPercent <= MAX_STEAL);
    return clean.length > 0 ? clean : all;
  };
  const med = (t: Target, f: (r: Measured) => number = (r) => r.requestsPerSecond) => median(counted(t).map(f));
  for (const t of targets) {
    const r = rss(t.pid);
    console.log(
      `median ${t.label} (${counted(t).length} of ${ROUNDS} rounds): ${med(t).toFixed(0)} calls/s, p99 ${med(t, (m) => m.p99Ms).toFixed(2)} ms, max ${med(t, (m) => m.maxMs).toFixed(2)} ms, ` +
        `${med(t, (m) => m.cpuMicrosPerCall).toFixed(0)} us server CPU/call, h2load ${med(t, (m) => m.generatorCpuPercent).toFixed(0)}%, steal ${med(t, (m) => m.stealPercent).toFixed(0)}%; ` +
        `RSS primary ${r.own.toFixed(0)} MiB, workers ${r.children.map((c) => c.toFixed(0)).join(" + ") || "(none)"} MiB after load`,
    );
  }
  const [v1, v2, v2parallel, noop1, noop2] = targets;
  const ratio = (a: Target, b: Target) => (med(a) / med(b)).toFixed(2);
  console.log(`ratio ${v2.label} / 1 worker: ${ratio(v2, v1)} (target >= 1.5)`);
  console.log(`ratio ${v2parallel.label} / 1 worker: ${ratio(v2parallel, v1)}`);
  console.log(`ratio no-op 2 workers / 1 process: ${ratio(noop2, noop1)} (what two workers gain for a bare grpc-js server on this machine)`);
  console.log(`Verdict / no-op: 1 worker ${ratio(v1, noop1)}, 2 workers ${ratio(v2, noop2)}; load average after: ${load()}`);
} finally {
  for (const t of targets) await t.stop();
}
process.exit(0);
