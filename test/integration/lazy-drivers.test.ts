/**
 * The embedded default loads no Postgres or Redis client: `node dist/src/main.js` with neither
 * DATABASE_URL nor REDIS_URL, asked once it serves which npm packages it has loaded (a preloaded
 * module answers SIGUSR2), has neither pg nor ioredis; the same binary with both URLs has both,
 * so the question can tell.
 */
import { randomBytes } from "node:crypto";
import { pathToFileURL } from "node:url";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type ReplicaProcess, buildReplica, replicaEnv, spawnReplica } from "../helpers/replica-process.js";
import { TEST_DATABASE_URL, TEST_REDIS_URL, dropSchema, freshSchema } from "../helpers/verdict.js";

const PRELOAD = pathToFileURL(path.resolve(import.meta.dirname, "../fixtures/process/loaded-packages.mjs")).href;

async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const started = performance.now();
  while (!(await fn().catch(() => false))) {
    if (performance.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts main.js with `env`, waits until it serves, and answers the packages it has loaded. */
async function loadedPackages(proc: ReplicaProcess): Promise<string[]> {
  await until(`${proc.name} serving`, async () => (await fetch(`${proc.httpBase}/readyz`)).status === 200).catch((error: Error) => {
    throw new Error(`${error.message}:\n${proc.output()}`);
  });
  const before = proc.output().length;
  proc.child.kill("SIGUSR2");
  let line: RegExpExecArray | null = null;
  await until(`${proc.name} answers`, async () => (line = /loaded-packages: (\[.*\])\n/.exec(proc.output().slice(before))) !== null, 10_000);
  return JSON.parse(line![1]) as string[];
}

describe("what a Verdict process loads", () => {
  const procs: ReplicaProcess[] = [];
  const schema = freshSchema();
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await dropSchema(schema);
  });

  it("on the embedded default, neither pg nor ioredis", async () => {
    const build = await buildReplica("lazy-drivers");
    const proc = await spawnReplica(
      "embedded",
      build.main,
      replicaEnv({ NODE_OPTIONS: `--import=${PRELOAD}`, VERDICT_DATA_DIR: "memory://", VERDICT_REDIS_CHANNEL: `verdict:it:${randomBytes(6).toString("hex")}` }),
    );
    procs.push(proc);
    const loaded = await loadedPackages(proc);
    expect(loaded).toContain("@grpc/grpc-js");
    expect(loaded).not.toContain("pg");
    expect(loaded).not.toContain("ioredis");
  }, 90_000);

  it("with DATABASE_URL and REDIS_URL, both", async () => {
    const build = await buildReplica("lazy-drivers");
    const proc = await spawnReplica(
      "postgres-redis",
      build.main,
      replicaEnv({
        NODE_OPTIONS: `--import=${PRELOAD}`,
        DATABASE_URL: TEST_DATABASE_URL,
        VERDICT_DATABASE_SCHEMA: schema,
        REDIS_URL: TEST_REDIS_URL,
        VERDICT_REDIS_CHANNEL: `verdict:it:${schema}`,
        VERDICT_RATE_LIMIT_REDIS_PREFIX: `verdict:it:${schema}:rl`,
      }),
    );
    procs.push(proc);
    const loaded = await loadedPackages(proc);
    expect(loaded).toContain("pg");
    expect(loaded).toContain("ioredis");
  }, 90_000);

  it("as the primary of workers, none of a replica's packages (it only forks, relays and sums)", async () => {
    const build = await buildReplica("lazy-drivers");
    const workersSchema = `${schema}_w`;
    const proc = await spawnReplica(
      "primary",
      build.main,
      replicaEnv({ NODE_OPTIONS: `--import=${PRELOAD}`, VERDICT_WORKERS: "2", DATABASE_URL: TEST_DATABASE_URL, VERDICT_DATABASE_SCHEMA: workersSchema }),
    );
    procs.push(proc);
    try {
      const loaded = await loadedPackages(proc);
      expect(loaded).toContain("prom-client");
      for (const name of ["@grpc/grpc-js", "@connectrpc/connect-node", "pg", "argon2", "openid-client"]) expect(loaded).not.toContain(name);
    } finally {
      await proc.stop();
      await dropSchema(workersSchema);
    }
  }, 90_000);
});
