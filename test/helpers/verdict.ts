/**
 * Starts a real Verdict replica in this process for integration tests: real gRPC and HTTP servers
 * on loopback ports, real Postgres (a fresh schema per replica set) or PGlite.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { loadConfig } from "../../src/config/config.js";
import { createLogger } from "../../src/observability/logger.js";
import { type RunningVerdict, type StartOptions, startVerdict } from "../../src/app.js";

/** The machine's Postgres (trust auth). */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
/** The machine's Redis. */
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
/** The root password integration tests configure. */
export const ROOT_PASSWORD = "root-password-for-tests";

/**
 * Environment every test replica shares, in process or spawned: loopback ephemeral ports, the test
 * root password, cheap argon2, no decision audit. Callers add the log level and shutdown grace.
 */
export const CHEAP_TEST_ENV: Readonly<Record<string, string>> = Object.freeze({
  VERDICT_GRPC_ADDR: "127.0.0.1:0",
  VERDICT_HTTP_ADDR: "127.0.0.1:0",
  VERDICT_ROOT_PASSWORD: ROOT_PASSWORD,
  VERDICT_ARGON2_MEMORY_KIB: "4096",
  VERDICT_ARGON2_TIME_COST: "1",
  VERDICT_ARGON2_PARALLELISM: "1",
  VERDICT_AUDIT_DECISIONS: "false",
});

/** A fresh schema name. */
export function freshSchema(): string {
  return `verdict_it_${randomBytes(6).toString("hex")}`;
}

/** Drops a schema created by a test. */
export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}

/**
 * Starts a replica with cheap argon2 settings and ephemeral ports; waits until it serves. With
 * `logLines`, every log line (at the configured VERDICT_LOG_LEVEL) is pushed there too.
 */
export async function startTestVerdict(
  env: Record<string, string> = {},
  schema?: string,
  logLines?: string[],
  start: Pick<StartOptions, "providerFetch" | "store"> = {},
): Promise<RunningVerdict & { grpcAddress: string; httpBase: string }> {
  const config = loadConfig({
    ...CHEAP_TEST_ENV,
    VERDICT_LOG_LEVEL: process.env.VERDICT_TEST_LOG_LEVEL ?? "error",
    VERDICT_SHUTDOWN_GRACE_MS: "500",
    ...env,
  });
  const write = logLines ? (line: string) => void logLines.push(line) : undefined;
  const v = await startVerdict(config, { ...start, schema, logger: createLogger(config.logLevel, { test: true }, write) });
  await v.loaded;
  return { ...v, close: v.close, grpcAddress: `127.0.0.1:${v.grpcPort}`, httpBase: `http://127.0.0.1:${v.httpPort}` };
}
