/**
 * Shutdown fits in VERDICT_SHUTDOWN_GRACE_MS: a real process (Postgres, Redis) holding a gRPC stream
 * that never sends its request body, and an HTTP request that never finishes, is told SIGTERM; it
 * must have closed its servers, engine, bus and database and exited before the grace is over.
 */
import { randomBytes } from "node:crypto";
import http2 from "node:http2";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { grpcClient } from "../helpers/grpc.js";
import { type ReplicaProcess, buildReplica, replicaEnv, spawnReplica } from "../helpers/replica-process.js";
import { TEST_DATABASE_URL, TEST_REDIS_URL, dropSchema, freshSchema } from "../helpers/verdict.js";

const GRACE_MS = 2000;

async function waitServing(address: string): Promise<void> {
  const health = grpcClient(Health, address);
  try {
    for (let i = 0; i < 200; i++) {
      const s = await health.check({}).catch(() => undefined);
      if (s?.status === HealthCheckResponse_ServingStatus.SERVING) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error("replica never became SERVING");
  } finally {
    health.close();
  }
}

describe("shutdown within the grace", () => {
  const schema = freshSchema();
  let build: Awaited<ReturnType<typeof buildReplica>>;
  let replica: ReplicaProcess | undefined;

  beforeAll(async () => {
    build = await buildReplica("shutdown");
  });
  afterAll(async () => {
    await replica?.stop(0);
    await dropSchema(schema);
  });

  it("exits before VERDICT_SHUTDOWN_GRACE_MS with a stream that never sends its body", async () => {
    replica = await spawnReplica(
      "r1",
      build.main,
      replicaEnv({
        DATABASE_URL: TEST_DATABASE_URL,
        VERDICT_DATABASE_SCHEMA: schema,
        REDIS_URL: TEST_REDIS_URL,
        VERDICT_REDIS_CHANNEL: `verdict:test:${randomBytes(6).toString("hex")}`,
        VERDICT_SHUTDOWN_GRACE_MS: String(GRACE_MS),
      }),
    );
    await waitServing(replica.grpcAddress);
    const session = http2.connect(`http://${replica.grpcAddress}`);
    session.on("error", () => undefined);
    const stream = session.request(
      { ":method": "POST", ":path": "/verdict.v1.DecisionService/Check", "content-type": "application/grpc", te: "trailers" },
      { endStream: false },
    );
    stream.on("error", () => undefined);
    await new Promise<void>((resolve) => stream.once("ready", () => resolve()));
    const [host, port] = replica.grpcAddress.split(":");
    const httpPort = new URL(replica.httpBase).port;
    const slow = connect(Number(httpPort), host);
    slow.on("error", () => undefined);
    await new Promise<void>((resolve) => slow.once("connect", () => resolve()));
    slow.write(`POST /verdict.v1.AuthService/Login HTTP/1.1\r\nhost: ${host}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{`);
    expect(port).not.toBe("");

    const exited = new Promise<number>((resolve) => replica!.child.once("exit", () => resolve(performance.now())));
    const started = performance.now();
    replica.child.kill("SIGTERM");
    const elapsed = (await exited) - started;
    session.destroy();
    slow.destroy();
    // Exited by itself, cleanly, and inside the grace (the ratio elapsed / grace below 1).
    expect(replica.child.exitCode, replica.output()).toBe(0);
    expect(elapsed / GRACE_MS, `${elapsed.toFixed(0)} ms of ${GRACE_MS}`).toBeLessThan(1);
    // It waited for the stuck calls rather than cutting them at once.
    expect(elapsed / GRACE_MS).toBeGreaterThan(0.5);
  });
});
