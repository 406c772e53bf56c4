/**
 * Every core (issue 13 section 3): a real `node dist/src/main.js` with VERDICT_WORKERS=2 on the
 * machine's Postgres, once with Redis and once without (the primary relays invalidations over IPC).
 * Polling is off (10 minutes), so a change a worker follows came over the bus or min_version.
 *
 * Which worker a connection reached is told by the `verdict-worker` metadata ("<n>/<pid>") of a
 * Health.Check on that connection; each test connection has its own subchannel pool, so its calls
 * all go to the worker that accepted it.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import { Channel, Client, Metadata, credentials, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { AuthService } from "../../gen/verdict/v1/auth_pb.js";
import { DecisionService } from "../../gen/verdict/v1/decision_pb.js";
import { type TestClient, grpcClient, grpcError } from "../helpers/grpc.js";
import { type ReplicaProcess, buildReplica, replicaEnv, scrapeMetrics, spawnReplica } from "../helpers/replica-process.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, TEST_REDIS_URL, dropSchema, freshSchema } from "../helpers/verdict.js";

const ROOT = { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString("base64")}` };
const GRACE_MS = 3000;
const FOLLOW_TIMEOUT_MS = 10_000;

/** One connection to the shared port, and the worker that accepted it. */
interface Conn {
  readonly worker: string;
  readonly pid: number;
  readonly admin: TestClient<typeof AdminService>;
  readonly decision: TestClient<typeof DecisionService>;
  readonly auth: TestClient<typeof AuthService>;
  close(): void;
}

async function until(what: string, fn: () => Promise<boolean>, timeoutMs = FOLLOW_TIMEOUT_MS): Promise<void> {
  const started = performance.now();
  for (;;) {
    if (await fn().catch(() => false)) return;
    if (performance.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Opens a new connection and asks Health.Check which worker it reached. */
async function connect(address: string): Promise<Conn> {
  const channel = new Channel(address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
  const raw = new Client(address, credentials.createInsecure(), { channelOverride: channel });
  const worker = await new Promise<string>((resolve, reject) => {
    let named = "";
    const call = raw.makeUnaryRequest(
      "/grpc.health.v1.Health/Check",
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.alloc(0),
      new Metadata(),
      {},
      (error) => (error ? reject(error) : resolve(named)),
    );
    call.on("metadata", (md: Metadata) => (named = String(md.get("verdict-worker")[0] ?? "")));
  });
  const admin = grpcClient(AdminService, address, { channelOverride: channel });
  const decision = grpcClient(DecisionService, address, { channelOverride: channel });
  const auth = grpcClient(AuthService, address, { channelOverride: channel });
  return {
    worker,
    pid: Number(worker.split("/")[1]),
    admin,
    decision,
    auth,
    close() {
      admin.close();
      decision.close();
      auth.close();
      raw.close();
      channel.close();
    },
  };
}

/** Connections until one reached each of `count` workers (cluster hands connections round-robin). */
async function onEachWorker(address: string, count: number, except: ReadonlySet<number> = new Set()): Promise<Map<string, Conn>> {
  const byWorker = new Map<string, Conn>();
  for (let i = 0; i < 40 && byWorker.size < count; i++) {
    const c = await connect(address);
    const slot = c.worker.split("/")[0];
    if (byWorker.has(slot) || except.has(c.pid)) c.close();
    else byWorker.set(slot, c);
  }
  if (byWorker.size < count) throw new Error(`reached ${byWorker.size} of ${count} workers`);
  return byWorker;
}

/** The sum of every series of `name` whose labels contain all of `labels`. */
function sum(metrics: Map<string, number>, name: string, labels: readonly string[] = []): number {
  let total = 0;
  for (const [series, value] of metrics) {
    const base = series.split("{")[0];
    if (base === name && labels.every((l) => series.includes(l))) total += value;
  }
  return total;
}

/** The Node flags a running process was started with (its command line before the script). */
function nodeFlags(pid: number): string[] {
  const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").slice(1);
  return args.slice(0, args.findIndex((a) => !a.startsWith("--")));
}

function workersSuite(title: string, redis: boolean) {
  describe(title, () => {
    const gc = redis ? "parallel" : "single-threaded";
    const schema = freshSchema();
    let build: Awaited<ReturnType<typeof buildReplica>>;
    let proc: ReplicaProcess;
    let A: Conn, B: Conn;
    const conns: Conn[] = [];

    beforeAll(async () => {
      build = await buildReplica("workers");
      proc = await spawnReplica(
        "workers",
        build.main,
        replicaEnv({
          VERDICT_WORKERS: "2",
          DATABASE_URL: TEST_DATABASE_URL,
          VERDICT_DATABASE_SCHEMA: schema,
          ...(redis ? { REDIS_URL: TEST_REDIS_URL, VERDICT_REDIS_CHANNEL: `verdict:it:${schema}`, VERDICT_RATE_LIMIT_REDIS_PREFIX: `verdict:it:${schema}:rl` } : {}),
          VERDICT_POLL_INTERVAL_MS: "600000",
          // min_version may wait for a catch-up delayed by this machine's scheduling (the default 100 ms is
          // the likely cause of a min_version Check denied once in a full run).
          VERDICT_MIN_VERSION_WAIT_MS: "5000",
          VERDICT_SHUTDOWN_GRACE_MS: String(GRACE_MS),
          // Named, not auto: auto depends on this machine's CPUs. One suite each way.
          VERDICT_WORKER_GC: gc,
        }),
      );
      await until(
        "both workers serving",
        async () => {
          const m = await scrapeMetrics(proc.httpBase);
          return sum(m, "verdict_worker_info") === 2 && sum(m, "verdict_ready") === 1;
        },
        30_000,
      );
      const both = await onEachWorker(proc.grpcAddress, 2);
      [A, B] = [both.get("1")!, both.get("2")!];
      conns.push(A, B);
      await A.admin.createTenant({ id: "acme" }, ROOT);
      await A.admin.putRole({ name: "reader", permissions: ["read:orders"] }, ROOT);
    }, 60_000);

    afterAll(async () => {
      for (const c of conns) c.close();
      await proc?.stop(GRACE_MS * 2);
      await dropSchema(schema);
    });

    const keyFor = async (name: string) => {
      await A.admin.createUser({ username: name, password: `${name}-password-123` }, ROOT);
      await A.admin.bindRole({ tenant: "acme", user: name, role: "reader" }, ROOT);
      return A.admin.createApiKey({ name: `${name}-key`, owner: name }, ROOT);
    };
    const check = (c: Conn, secret: string, minVersion = 0n) => c.decision.check({ credential: secret, action: "read:orders", tenant: "acme", minVersion });

    it("serves from two worker processes on one port", () => {
      expect(A.pid).not.toBe(B.pid);
      expect(A.pid).not.toBe(proc.child.pid);
      expect(B.pid).not.toBe(proc.child.pid);
    });

    it(`runs the workers with the garbage collector VERDICT_WORKER_GC=${gc} names, the primary as it was started`, () => {
      expect(nodeFlags(proc.child.pid!)).not.toContain("--single-threaded-gc");
      for (const c of [A, B]) expect(nodeFlags(c.pid).includes("--single-threaded-gc")).toBe(gc === "single-threaded");
    });

    it("a key created through one worker is allowed on the other with min_version, and its revocation reaches the other over the bus", async () => {
      const key = await keyFor("alice");
      expect((await check(B, key.secret, key.version)).allowed).toBe(true);
      await A.admin.revokeApiKey({ id: key.apiKey!.id }, ROOT);
      // No min_version, no polling: only the bus can tell B.
      await until("revocation seen by worker 2", async () => !(await check(B, key.secret)).allowed);
      expect((await check(A, key.secret)).allowed).toBe(false);
    });

    it("/metrics sums both workers, the hot-path counters included", async () => {
      const key = await keyFor("bob");
      expect((await check(A, key.secret, key.version)).allowed).toBe(true);
      expect((await check(B, key.secret, key.version)).allowed).toBe(true);
      const before = await scrapeMetrics(proc.httpBase);
      for (let i = 0; i < 3; i++) expect((await check(A, key.secret)).allowed).toBe(true);
      for (let i = 0; i < 5; i++) expect((await check(B, key.secret)).allowed).toBe(true);
      const after = await scrapeMetrics(proc.httpBase);
      const delta = (name: string, labels: string[]) => sum(after, name, labels) - sum(before, name, labels);
      // 3 on one worker and 5 on the other: only the sum of both gives 8.
      expect(delta("verdict_decisions_total", ['rpc="check"', 'outcome="allow"'])).toBe(8);
      expect(delta("verdict_decision_requests_total", ['method="Check"', 'transport="grpc"', 'code="ok"'])).toBe(8);
      expect(delta("verdict_check_duration_seconds_count", ['rpc="check"'])).toBe(8);
      expect(sum(after, "verdict_worker_info", [`pid="${A.pid}"`])).toBe(1);
      expect(sum(after, "verdict_worker_info", [`pid="${B.pid}"`])).toBe(1);
      expect(sum(after, "verdict_ready")).toBe(1);
    });

    it("holds a key's rate limit for the whole process: 100 a minute driven at 300 over connections to both workers admits about 100", async () => {
      const key = await keyFor("dave");
      const { version } = await A.admin.setRateLimit({ target: { target: { case: "keyId", value: key.apiKey!.id } }, limit: { perMinute: 100 } }, ROOT);
      // Two more connections (they land on either worker): four in all, both workers among them.
      const more = [await connect(proc.grpcAddress), await connect(proc.grpcAddress)];
      conns.push(...more);
      const drivers = [A, B, ...more];
      for (const c of drivers) expect((await c.decision.check({ credential: key.secret, action: "read:orders", tenant: "acme", cost: 0, minVersion: version })).allowed).toBe(true);
      const started = performance.now();
      const answers: Array<Promise<{ worker: string; allowed: boolean }>> = [];
      for (let i = 0; i < 300; i++) {
        await new Promise((r) => setTimeout(r, Math.max(0, started + i * 10 - performance.now())));
        const c = drivers[i % drivers.length];
        answers.push(check(c, key.secret).then((a) => ({ worker: c.worker.split("/")[0], allowed: a.allowed })));
      }
      const settled = await Promise.all(answers);
      const admitted = settled.filter((a) => a.allowed);
      const byWorker = (w: string) => admitted.filter((a) => a.worker === w).length;
      console.log(`workers overshoot (${redis ? "Redis" : "IPC"}): 300 Checks in ${((performance.now() - started) / 1000).toFixed(1)} s, admitted ${admitted.length} (worker 1: ${byWorker("1")}, worker 2: ${byWorker("2")}), limit 100`);
      expect(byWorker("1")).toBeGreaterThan(0);
      expect(byWorker("2")).toBeGreaterThan(0);
      expect(admitted.length).toBeGreaterThanOrEqual(95);
      expect(admitted.length).toBeLessThanOrEqual(105);
    }, 60_000);

    it("counts failed logins for the whole process: two workers allow the guesses of one", async () => {
      await keyFor("erin");
      const codes = [];
      for (let i = 0; i < 8; i++) codes.push((await grpcError([A, B][i % 2].auth.login({ username: "erin", password: `wrong-password-${i}`, tenant: "" }))).code);
      // VERDICT_LOGIN_MAX_ATTEMPTS (5) failures per username and address in the whole process, then refused.
      expect(codes).toEqual([...Array(5).fill(status.UNAUTHENTICATED), ...Array(3).fill(status.RESOURCE_EXHAUSTED)]);
    });

    it("replaces a killed worker while Checks keep succeeding", async () => {
      const key = await keyFor("carol");
      // The whole answer on failure: its reason and message say why.
      expect(await check(A, key.secret, key.version)).toMatchObject({ allowed: true });
      expect(await check(B, key.secret, key.version)).toMatchObject({ allowed: true });
      const killed = B.pid;
      let calls = 0;
      let replaced = false;
      process.kill(killed, "SIGKILL");
      // node:cluster can hand a connection that arrives in the instant a worker dies to that worker
      // (it then hangs until the client's deadline): the fresh connections below start once the
      // primary has noticed the death, which the summed metrics show. A scrape can itself reach the
      // dying worker: each has a timeout, and until() tries again.
      await until("the primary noticed", async () => sum(await scrapeMetrics(proc.httpBase, 2000), "verdict_worker_info", [`pid="${killed}"`]) === 0);
      const watch = until(
        "worker 2 replaced",
        async () => {
          const m = await scrapeMetrics(proc.httpBase, 2000);
          replaced = sum(m, "verdict_worker_info") === 2;
          return replaced;
        },
        30_000,
      );
      // Meanwhile: Checks on the surviving worker's connection and on fresh connections all succeed.
      while (!replaced) {
        expect((await check(A, key.secret)).allowed).toBe(true);
        const fresh = await connect(proc.grpcAddress);
        try {
          expect(fresh.pid).not.toBe(killed);
          expect((await check(fresh, key.secret)).allowed).toBe(true);
        } finally {
          fresh.close();
        }
        calls++;
      }
      await watch;
      expect(calls).toBeGreaterThan(0);
      const again = await onEachWorker(proc.grpcAddress, 2, new Set([killed]));
      for (const c of again.values()) {
        conns.push(c);
        expect((await check(c, key.secret)).allowed).toBe(true);
      }
      B = again.get("2")!;
      expect(B.pid).not.toBe(killed);
      // The replacement is forked with the same flags as the first.
      expect(nodeFlags(B.pid).includes("--single-threaded-gc")).toBe(gc === "single-threaded");
      // The new worker follows revocations like the first did.
      await A.admin.revokeApiKey({ id: key.apiKey!.id }, ROOT);
      await until("revocation seen by the new worker 2", async () => !(await check(B, key.secret)).allowed);
    });

    it("drains every worker within VERDICT_SHUTDOWN_GRACE_MS on SIGTERM", async () => {
      // A call on each worker that never sends its body holds that worker's drain.
      const sessions = [A, B].map(() => http2.connect(`http://${proc.grpcAddress}`));
      for (const session of sessions) {
        session.on("error", () => undefined);
        const stream = session.request(
          { ":method": "POST", ":path": "/verdict.v1.DecisionService/Check", "content-type": "application/grpc", te: "trailers" },
          { endStream: false },
        );
        stream.on("error", () => undefined);
        await new Promise<void>((resolve) => stream.once("ready", () => resolve()));
      }
      const pids = [A.pid, B.pid];
      const exited = new Promise<number>((resolve) => proc.child.once("exit", () => resolve(performance.now())));
      const started = performance.now();
      proc.child.kill("SIGTERM");
      const elapsed = (await exited) - started;
      for (const s of sessions) s.destroy();
      expect(proc.child.exitCode, proc.output()).toBe(0);
      expect(elapsed / GRACE_MS, `${elapsed.toFixed(0)} ms of ${GRACE_MS}`).toBeLessThan(1);
      for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
    });
  });
}

workersSuite("VERDICT_WORKERS=2 on Postgres and Redis", true);
workersSuite("VERDICT_WORKERS=2 on Postgres without Redis (invalidations over IPC)", false);

describe("VERDICT_WORKERS on the embedded database", () => {
  it("refuses more than one worker without DATABASE_URL, with a clear error", async () => {
    const build = await buildReplica("workers");
    const channel = `verdict:it:${randomBytes(6).toString("hex")}`;
    await expect(spawnReplica("embedded", build.main, replicaEnv({ VERDICT_WORKERS: "2", VERDICT_DATA_DIR: "memory://", VERDICT_REDIS_CHANNEL: channel }))).rejects.toThrow(
      /VERDICT_WORKERS=2 needs DATABASE_URL/,
    );
  });
});
