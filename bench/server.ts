/**
 * The server the h2load benches measure: one replica in this process (the embedded default, PGlite
 * in a fresh data directory removed at the end, or DATABASE_URL in a fresh schema dropped at the
 * end), with a tenant, a user, a role and an API key.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../src/config/config.js";
import { createLogger } from "../src/observability/logger.js";
import { type RunningVerdict, startVerdict } from "../src/app.js";
import { AdminService } from "../gen/verdict/v1/admin_pb.js";
import { grpcClient } from "../test/helpers/grpc.js";
import { dropSchema, freshSchema } from "../test/helpers/verdict.js";

/** Root's password on the bench server. */
export const BENCH_ROOT_PASSWORD = "bench-root-password";

/** The bench principal's password (user "bench-user" in tenant "bench"). */
export const BENCH_USER_PASSWORD = "bench-user-password";

/** A started bench server. */
export interface BenchServer {
  readonly verdict: RunningVerdict;
  /** host:port of the gRPC server. */
  readonly address: string;
  /** A full API key of bench-user, whose role allows read:orders, write:* and *:invoices in "bench". */
  readonly apiKey: string;
  readonly storeDriver: string;
  close(): Promise<void>;
}

/** Starts the server with `env` on top of the process environment and sets up the bench principal. */
export async function startBenchServer(env: Record<string, string> = {}): Promise<BenchServer> {
  const dataDir = process.env.DATABASE_URL ? undefined : mkdtempSync(join(tmpdir(), "verdict-bench-data-"));
  const config = loadConfig({
    ...process.env,
    VERDICT_GRPC_ADDR: "127.0.0.1:0",
    VERDICT_HTTP_ADDR: "127.0.0.1:0",
    VERDICT_DATA_DIR: dataDir ?? "./data",
    VERDICT_ROOT_PASSWORD: BENCH_ROOT_PASSWORD,
    VERDICT_LOG_LEVEL: "warn",
    // The benches drive one key far beyond the default limits: off unless a bench sets them.
    VERDICT_RATE_LIMIT_PER_MINUTE: "0",
    VERDICT_RATE_LIMIT_PER_HOUR: "0",
    ...env,
  });
  // With DATABASE_URL, a fresh schema (dropped at the end) unless VERDICT_DATABASE_SCHEMA names one.
  const schema = config.databaseUrl && !config.databaseSchema ? freshSchema() : undefined;
  const verdict = await startVerdict(config, { logger: createLogger("warn"), schema });
  await verdict.loaded;
  const address = `127.0.0.1:${verdict.grpcPort}`;
  const root = { authorization: `Basic ${Buffer.from(`root:${BENCH_ROOT_PASSWORD}`).toString("base64")}` };
  const admin = grpcClient(AdminService, address);
  await admin.createTenant({ id: "bench" }, root);
  await admin.createUser({ username: "bench-user", password: BENCH_USER_PASSWORD }, root);
  await admin.putRole({ name: "bench-role", permissions: ["read:orders", "write:*", "*:invoices"] }, root);
  await admin.bindRole({ tenant: "bench", user: "bench-user", role: "bench-role" }, root);
  const { secret } = await admin.createApiKey({ name: "bench", owner: "bench-user" }, root);
  admin.close();
  return {
    verdict,
    address,
    apiKey: secret,
    storeDriver: verdict.store.driver,
    async close() {
      await verdict.close();
      if (schema) await dropSchema(schema);
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
