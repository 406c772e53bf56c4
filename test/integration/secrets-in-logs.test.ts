/**
 * Secrets are never logged, grpc-js's own log lines included. grpc-js logs a header it cannot keep
 * as metadata with its value ("Failed to add metadata entry x-api-key: <the key>", for a value with
 * a character outside printable ASCII), and its call trace (GRPC_TRACE=server_call,
 * GRPC_VERBOSITY=DEBUG, which an operator may turn on to debug) prints every request header. A
 * real `node dist/src/main.js` on the machine's Postgres, every line it writes (stdout and stderr)
 * read; the calls go over raw HTTP/2 to an Admin method, which grpc-js serves.
 */
import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ReplicaProcess, buildReplica, replicaEnv, spawnReplica } from "../helpers/replica-process.js";
import { TEST_DATABASE_URL, dropSchema, freshSchema } from "../helpers/verdict.js";

// Shaped like real credentials (never valid here: what matters is whether they are printed).
const API_KEY = "vk_abcdefghijkl_Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4abcdef";
const JWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1c2VyLTEyMyJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg";
const REFRESH = "vrt_0123456789abcdefghijABCDEFGHIJ0123456789_-x";
const PASSWORD_BASIC = Buffer.from("root:the-root-password-1").toString("base64");

/** One gRPC call to AdminService/ListTenants with `headers`, answered or not. */
async function call(address: string, headers: Record<string, string>): Promise<void> {
  const session = http2.connect(`http://${address}`);
  session.on("error", () => undefined);
  try {
    await new Promise<void>((resolve) => {
      const stream = session.request({
        ":method": "POST",
        ":path": "/verdict.v1.AdminService/ListTenants",
        "content-type": "application/grpc",
        te: "trailers",
        ...headers,
      });
      stream.on("error", () => resolve());
      stream.on("close", () => resolve());
      stream.on("data", () => undefined);
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
    });
  } finally {
    session.close();
  }
}

const SECRETS = [API_KEY, JWT, REFRESH, PASSWORD_BASIC, "the-root-password-1"];

function suite(title: string, env: Record<string, string>, expectLine: RegExp) {
  describe(title, () => {
    const schema = freshSchema();
    let proc: ReplicaProcess;

    beforeAll(async () => {
      const { main } = await buildReplica("secrets-in-logs");
      proc = await spawnReplica("secrets-in-logs", main, replicaEnv({ DATABASE_URL: TEST_DATABASE_URL, VERDICT_DATABASE_SCHEMA: schema, ...env }));
    }, 30_000);

    afterAll(async () => {
      await proc?.stop();
      await dropSchema(schema);
    });

    it("prints no credential a request carried, in any header grpc-js logs", async () => {
      // A trailing no-break space makes grpc-js refuse each value as metadata (and log it).
      const nbsp = "\u00a0";
      await call(proc.grpcAddress, { "x-api-key": API_KEY + nbsp });
      await call(proc.grpcAddress, { authorization: `Bearer ${JWT}${nbsp}` });
      await call(proc.grpcAddress, { authorization: `Basic ${PASSWORD_BASIC}${nbsp}` });
      await call(proc.grpcAddress, { cookie: `verdict_session=${JWT}; verdict_session_refresh=${REFRESH}${nbsp}` });
      // And the same credentials as valid header values (what a call trace prints).
      await call(proc.grpcAddress, { "x-api-key": API_KEY, cookie: `verdict_session=${JWT}; verdict_session_refresh=${REFRESH}` });
      await call(proc.grpcAddress, { authorization: `Bearer ${JWT}` });
      await call(proc.grpcAddress, { authorization: `Basic ${PASSWORD_BASIC}` });
      await new Promise((r) => setTimeout(r, 200));
      const out = proc.output();
      // The lines were written (so this test reads what grpc-js logs), without the values.
      expect(out).toMatch(expectLine);
      for (const secret of SECRETS) expect(out, `${secret.slice(0, 12)}... printed`).not.toContain(secret);
    });
  });
}

suite("grpc-js's dropped-metadata lines", {}, /"component":"grpc-js".*Failed to add metadata entry x-api-key/);
suite("grpc-js's call trace (GRPC_TRACE=server_call, GRPC_VERBOSITY=DEBUG, VERDICT_LOG_LEVEL=debug)", { GRPC_TRACE: "server_call", GRPC_VERBOSITY: "DEBUG", VERDICT_LOG_LEVEL: "debug" }, /received headers/);
