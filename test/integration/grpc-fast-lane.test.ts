/**
 * The gRPC fast lane (src/server/fast-lane.ts) answers exactly what grpc-js answers. Two real
 * servers on the machine's Postgres, one with the lane (the default) and one with
 * VERDICT_GRPC_FAST_LANE=false, get the same raw HTTP/2 requests (node:http2, so that framing,
 * headers and timing are under the test's control): good calls, broken framing, oversize, compressed
 * and wrongly typed bodies, waits past the client's grpc-timeout, a request that never arrives. For
 * each, the status, the message and the response must be the same, and the lane must be the one that
 * answered on the first server (its answers carry no `grpc-encoding` header; grpc-js's do).
 * Handlers see the request metadata grpc-js would give them: two bare gRPC servers, with and without
 * the lane, mount a probe that answers what `call.metadata.get` and rpc.ts's CallContext return.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type ServerUnaryCall, type ServiceDefinition, type sendUnaryData, status } from "@grpc/grpc-js";
import http2 from "node:http2";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { CheckBatchRequestSchema, CheckBatchResponseSchema, CheckRequestSchema, CheckResponseSchema, DecisionService } from "../../gen/verdict/v1/decision_pb.js";
import { HealthCheckRequestSchema, HealthCheckResponseSchema } from "../../gen/grpc/health/v1/health_pb.js";
import { envoyRequest, envoyRequestBytes } from "../helpers/envoy-client.js";
import { grpcClient } from "../helpers/grpc.js";
import { envelope } from "../helpers/http-protocols.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";
import { parseGrpcTimeout } from "../../src/server/fast-lane.js";
import { type RunningGrpcServer, startGrpcServer } from "../../src/server/grpc-server.js";
import { HealthState } from "../../src/api/health.js";
import { type GrpcService, toGrpcService } from "../../src/api/rpc.js";
import { createLogger } from "../../src/observability/logger.js";

const ROOT = { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString("base64")}` };
const CHECK = "/verdict.v1.DecisionService/Check";
const CHECK_BATCH = "/verdict.v1.DecisionService/CheckBatch";
const HEALTH = "/grpc.health.v1.Health/Check";
const EXT_AUTHZ = "/envoy.service.auth.v3.Authorization/Check";
const MAX_REQUEST_BYTES = 4096;
const REQUEST_TIMEOUT_MS = 300;

/** What a raw call got back. */
interface Answer {
  readonly httpStatus: number;
  readonly code: number | undefined;
  readonly message: string;
  readonly body: Buffer;
  readonly encodingHeader: string | undefined;
}

/** One message as a gRPC frame (flag byte, length, bytes). */
function frame(message: Uint8Array, compressed = false): Buffer {
  return envelope(Buffer.from(message), compressed ? 1 : 0);
}

/** The message of a one-message response body. */
function unframe(body: Buffer): Buffer {
  expect(body.length).toBeGreaterThanOrEqual(5);
  expect(body.readUInt32BE(1)).toBe(body.length - 5);
  return body.subarray(5);
}

/** Sends one call on `session`: headers, then `body` (absent: headers only, and the stream stays open). */
function call(session: http2.ClientHttp2Session, path: string, body: Buffer | undefined, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers });
    let httpStatus = 0;
    let code: number | undefined;
    let message = "";
    let encodingHeader: string | undefined;
    const chunks: Buffer[] = [];
    const read = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) code = Number(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) message = decodeURIComponent(String(h["grpc-message"]));
    };
    stream.on("response", (h) => {
      httpStatus = Number(h[":status"]);
      encodingHeader = h["grpc-encoding"] as string | undefined;
      read(h);
    });
    stream.on("trailers", read);
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", reject);
    stream.on("close", () => resolve({ httpStatus, code, message, body: Buffer.concat(chunks), encodingHeader }));
    if (body !== undefined) stream.end(body);
  });
}

async function connect(address: string): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(`http://${address}`);
  session.on("error", () => undefined);
  await new Promise<void>((resolve) => session.once("remoteSettings", () => resolve()));
  return session;
}

describe("parseGrpcTimeout", () => {
  it("reads every unit of the gRPC spec and refuses what is not one", () => {
    expect(parseGrpcTimeout("2H")).toBe(7_200_000);
    expect(parseGrpcTimeout("3M")).toBe(180_000);
    expect(parseGrpcTimeout("4S")).toBe(4000);
    expect(parseGrpcTimeout("250m")).toBe(250);
    expect(parseGrpcTimeout("1500u")).toBe(1.5);
    expect(parseGrpcTimeout("2000000n")).toBe(2);
    for (const bad of [undefined, "", "10", "10s", "123456789m", "-1m", "1.5S", " 1S"]) expect(parseGrpcTimeout(bad)).toBeUndefined();
    // Beyond what a timer holds (2^31 - 1 ms, about 24.8 days): Node would fire it at once.
    expect(parseGrpcTimeout("99999999H")).toBe(2 ** 31 - 1);
    expect(parseGrpcTimeout("99999999M")).toBe(2 ** 31 - 1);
  });
});

describe("the gRPC fast lane answers what grpc-js answers", () => {
  const schemas = [freshSchema(), freshSchema()];
  const servers: Awaited<ReturnType<typeof startTestVerdict>>[] = [];
  const sessions: http2.ClientHttp2Session[] = [];
  const keys: string[] = [];

  beforeAll(async () => {
    for (const [i, lane] of ["true", "false"].entries()) {
      const v = await startTestVerdict(
        {
          DATABASE_URL: TEST_DATABASE_URL,
          VERDICT_GRPC_FAST_LANE: lane,
          VERDICT_MAX_REQUEST_BYTES: String(MAX_REQUEST_BYTES),
          VERDICT_GRPC_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
          VERDICT_MIN_VERSION_WAIT_MS: "5000",
          VERDICT_CHECK_REQUIRE_CALLER: "true",
        },
        schemas[i],
      );
      servers.push(v);
      const admin = grpcClient(AdminService, v.grpcAddress);
      await admin.createTenant({ id: "acme" }, ROOT);
      await admin.createUser({ username: "alice", password: "alice-password-1" }, ROOT);
      await admin.putRole({ name: "reader", permissions: ["read:orders", "check:decisions"] }, ROOT);
      await admin.bindRole({ tenant: "acme", user: "alice", role: "reader" }, ROOT);
      keys.push((await admin.createApiKey({ name: "k", owner: "alice" }, ROOT)).secret);
      admin.close();
      sessions.push(await connect(v.grpcAddress));
    }
  });
  afterAll(async () => {
    for (const s of sessions) s.close();
    for (const v of servers) await v.close();
    for (const s of schemas) await dropSchema(s);
  });

  /** Sends the same call to both servers (built per server: each has its own key). */
  async function both(build: (key: string) => { path: string; body?: Buffer; headers?: Record<string, string> }): Promise<[Answer, Answer]> {
    const answers = await Promise.all(
      sessions.map((session, i) => {
        const c = build(keys[i]);
        return call(session, c.path, c.body, c.headers);
      }),
    );
    return answers as [Answer, Answer];
  }

  const checkBody = (key: string, extra: Partial<{ action: string; minVersion: bigint }> = {}) =>
    frame(toBinary(CheckRequestSchema, create(CheckRequestSchema, { credential: key, action: "read:orders", tenant: "acme", ...extra })));

  it("serves Check, CheckBatch, ext_authz Check and health Check on the lane, the rest on grpc-js", async () => {
    const [lane, plain] = await both((key) => ({ path: CHECK, body: checkBody(key), headers: { authorization: `Bearer ${key}` } }));
    expect([lane.code, plain.code]).toEqual([status.OK, status.OK]);
    expect(lane.encodingHeader).toBeUndefined();
    expect(plain.encodingHeader).toBe("identity");
    const [a, b] = [lane, plain].map((x) => fromBinary(CheckResponseSchema, unframe(x.body)));
    expect(a.allowed).toBe(true);
    // Each server has its own user and key: everything else of the answer is the same.
    const comparable = (r: typeof a) => ({ ...r, decisionId: "", policyVersion: 0n, principal: { ...r.principal!, keyId: "", userId: "" } });
    expect(comparable(a)).toEqual(comparable(b));

    const batch = await both((key) => ({
      path: CHECK_BATCH,
      body: frame(toBinary(CheckBatchRequestSchema, create(CheckBatchRequestSchema, { credential: key, actions: ["read:orders", "delete:orders"], tenant: "acme" }))),
      headers: { "x-api-key": key },
    }));
    expect(batch.map((x) => x.code)).toEqual([status.OK, status.OK]);
    expect(batch[0].encodingHeader).toBeUndefined();
    const decisions = batch.map((x) => fromBinary(CheckBatchResponseSchema, unframe(x.body)).decisions.map((d) => [d.action, d.allowed, d.reason]));
    expect(decisions[0]).toEqual([
      ["read:orders", true, decisions[0][0][2]],
      ["delete:orders", false, decisions[0][1][2]],
    ]);
    expect(decisions[0]).toEqual(decisions[1]);

    const health = await both(() => ({ path: HEALTH, body: frame(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema))) }));
    expect(health[0].encodingHeader).toBeUndefined();
    expect(health.map((x) => fromBinary(HealthCheckResponseSchema, unframe(x.body)).status)).toEqual([1, 1]);

    // ext_authz: the request as Envoy's own proto files encode it.
    const envoy = await both((key) => ({ path: EXT_AUTHZ, body: frame(envoyRequestBytes(envoyRequest({ headers: { "x-api-key": key } }))) }));
    expect(envoy.map((x) => x.code)).toEqual([status.OK, status.OK]);
    expect(envoy[0].encodingHeader).toBeUndefined();
    expect(envoy[1].encodingHeader).toBe("identity");

    const admin = await both(() => ({ path: "/verdict.v1.AdminService/ListTenants", body: frame(new Uint8Array()), headers: ROOT }));
    expect(admin.map((x) => x.code)).toEqual([status.OK, status.OK]);
    expect(admin[0].encodingHeader).toBe("identity");
  });

  it("reads the caller's credential from the headers as grpc-js does", async () => {
    const cases: Record<string, (k: string) => Record<string, string>> = {
      bearer: (k) => ({ authorization: `Bearer ${k}` }),
      "x-api-key": (k) => ({ "x-api-key": k }),
      none: () => ({}),
      "unknown key": () => ({ authorization: "Bearer vk_nope" }),
      // Values grpc-js drops (a metadata value is printable ASCII): the caller presents nothing,
      // though String.trim and the Bearer pattern's \s would make the key out of them.
      "a key with a trailing no-break space": (k) => ({ "x-api-key": `${k}\u00a0` }),
      "a tab after Bearer": (k) => ({ authorization: `Bearer\t${k}` }),
    };
    for (const [why, headers] of Object.entries(cases)) {
      const answers = await both((key) => ({ path: CHECK, body: checkBody(key), headers: headers(key) }));
      const [a, b] = answers.map((x) => fromBinary(CheckResponseSchema, unframe(x.body)));
      expect({ why, lane: [a.allowed, a.reason, a.message] }).toEqual({ why, lane: [b.allowed, b.reason, b.message] });
    }
  });

  it("refuses broken calls with grpc-js's status codes", async () => {
    const cases: Record<string, (key: string) => { path: string; body?: Buffer; headers?: Record<string, string> }> = {
      "no message": () => ({ path: CHECK, body: Buffer.alloc(0) }),
      "two messages": (key) => ({ path: CHECK, body: Buffer.concat([checkBody(key), checkBody(key)]) }),
      "message over the size limit": (key) => ({ path: CHECK, body: frame(Buffer.alloc(MAX_REQUEST_BYTES + 1, 0x41)), headers: { authorization: `Bearer ${key}` } }),
      "a message followed by a flood of bytes": (key) => ({ path: CHECK, body: Buffer.concat([checkBody(key), Buffer.alloc(3 * MAX_REQUEST_BYTES, 0x41)]) }),
      "message that does not decode": () => ({ path: CHECK, body: frame(Buffer.from([0x0a, 0x05, 0x61])) }),
      "gzip message with grpc-encoding": (key) => ({
        path: CHECK,
        body: frame(gzipSync(toBinary(CheckRequestSchema, create(CheckRequestSchema, { credential: key, action: "read:orders", tenant: "acme" }))), true),
        headers: { "grpc-encoding": "gzip", authorization: `Bearer ${key}` },
      }),
      "wrong content type": (key) => ({ path: CHECK, body: checkBody(key), headers: { "content-type": "application/json" } }),
    };
    for (const [why, build] of Object.entries(cases)) {
      const [lane, plain] = await both(build);
      expect({ why, httpStatus: lane.httpStatus, code: lane.code }).toEqual({ why, httpStatus: plain.httpStatus, code: plain.code });
    }
    const [oversize] = await both(cases["message over the size limit"]);
    expect(oversize.code).toBe(status.RESOURCE_EXHAUSTED);
    const [flood] = await both(cases["a message followed by a flood of bytes"]);
    expect(flood.code).toBe(status.RESOURCE_EXHAUSTED);
    const [gzipped] = await both(cases["gzip message with grpc-encoding"]);
    expect(fromBinary(CheckResponseSchema, unframe(gzipped.body)).allowed).toBe(true);
  });

  it("ends a call that waits past the client's grpc-timeout, and one whose request never arrives", { timeout: 30_000 }, async () => {
    const waits = await both((key) => ({ path: CHECK, body: checkBody(key, { minVersion: 1_000_000n }), headers: { authorization: `Bearer ${key}`, "grpc-timeout": "200m" } }));
    expect(waits.map((x) => x.code)).toEqual([status.DEADLINE_EXCEEDED, status.DEADLINE_EXCEEDED]);
    // A timeout longer than a timer can hold waits like no timeout: the answer is the server's STALE.
    const long = await both((key) => ({ path: CHECK, body: checkBody(key, { minVersion: 1_000_000n }), headers: { authorization: `Bearer ${key}`, "grpc-timeout": "99999999H" } }));
    expect(long.map((x) => x.code)).toEqual([status.OK, status.OK]);
    expect(long.map((x) => fromBinary(CheckResponseSchema, unframe(x.body)).allowed)).toEqual([false, false]);

    const started = Date.now();
    const stuck = await both(() => ({ path: CHECK, body: undefined }));
    expect(stuck.map((x) => x.code)).toEqual([status.DEADLINE_EXCEEDED, status.DEADLINE_EXCEEDED]);
    expect(Date.now() - started).toBeLessThan(REQUEST_TIMEOUT_MS * 2 + 2000);
  });

  it("keeps serving after a client resets calls it had started", async () => {
    for (const session of sessions) {
      for (let i = 0; i < 20; i++) {
        const s = session.request({ ":method": "POST", ":path": CHECK, "content-type": "application/grpc", te: "trailers" });
        s.on("error", () => undefined);
        s.write(Buffer.from([0, 0, 0, 0, 40]));
        s.close(http2.constants.NGHTTP2_CANCEL);
      }
    }
    const [lane, plain] = await both((key) => ({ path: CHECK, body: checkBody(key), headers: { authorization: `Bearer ${key}` } }));
    expect([lane.code, plain.code]).toEqual([status.OK, status.OK]);
  });
});

describe("the gRPC fast lane hands a handler the request metadata grpc-js does", () => {
  const PROBE = "/verdict.test.Probe/Metadata";
  const servers: RunningGrpcServer[] = [];
  const sessions: http2.ClientHttp2Session[] = [];
  const b64 = (bytes: number[] | string) => Buffer.from(bytes as never).toString("base64");

  /** Answers, for each name the request lists (JSON), what `call.metadata.get(name)` returns: bytes or text. */
  const probe: GrpcService = {
    definition: {
      metadata: {
        path: PROBE,
        requestStream: false,
        responseStream: false,
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (r: unknown) => Buffer.from(JSON.stringify(r)),
        responseDeserialize: (b: Buffer) => b,
      },
    } as unknown as ServiceDefinition,
    implementation: {
      metadata: (call: ServerUnaryCall<Buffer, unknown>, callback: sendUnaryData<unknown>) => {
        const names = JSON.parse(call.request.toString()) as string[];
        callback(null, Object.fromEntries(names.map((n) => [n, call.metadata.get(n).map((v) => (Buffer.isBuffer(v) ? { bytes: v.toString("hex") } : { text: v }))])));
      },
    },
  };
  /** Check through rpc.ts, as Verdict's handlers see a call: the message is what CallContext.header(action) gives. */
  const viaCallContext = toGrpcService(
    DecisionService,
    {
      check: (req, ctx) => create(CheckResponseSchema, { message: JSON.stringify(ctx.header(req.action) ?? null) }),
      checkBatch: () => create(CheckBatchResponseSchema),
    },
    createLogger("error", {}, () => undefined),
  );

  beforeAll(async () => {
    for (const lane of [[PROBE, CHECK], []]) {
      const server = await startGrpcServer({
        addr: { host: "127.0.0.1", port: 0 },
        services: [probe, viaCallContext],
        health: new HealthState(),
        maxRequestBytes: MAX_REQUEST_BYTES,
        fastLane: lane,
        limits: { maxConcurrentStreams: 100, maxConnections: 100, requestTimeoutMs: 5000 },
        logger: createLogger("error", {}, () => undefined),
      });
      servers.push(server);
      sessions.push(await connect(`127.0.0.1:${server.port}`));
    }
  });
  afterAll(async () => {
    for (const s of sessions) s.close();
    for (const s of servers) await s.close(0);
  });

  const HEADERS: Record<string, string | string[]> = {
    "x-trace-bin": b64([0, 1, 2, 0xff]),
    // Sent as two fields: node:http2 joins them with ", ", and grpc-js splits custom -bin values again.
    "x-multi-bin": [b64([1, 2]), b64([3])],
    "grpc-tags-bin": [b64([4]), b64([5])],
    "x-empty-bin": "",
    "x-text": "plain",
    "x-empty": "",
    "x-no-break-space": "k\u00a0",
    "x-tab": "a\tb",
    "x!y": "illegal key",
    "grpc-timeout": "5S",
    "grpc-encoding": "identity",
    "grpc-accept-encoding": "identity,gzip",
    "accept-encoding": "gzip",
  };

  async function both(path: string, body: Buffer, headers: Record<string, string | string[]>): Promise<Answer[]> {
    return Promise.all(sessions.map((session) => call(session, path, body, headers as Record<string, string>)));
  }

  it("decodes -bin values to bytes, and drops what grpc-js drops", async () => {
    const names = [...Object.keys(HEADERS), "X-Text", "X-Trace-Bin", ":path", ":authority", "content-type", "te", "absent", "absent-bin"];
    const [lane, plain] = await both(PROBE, frame(Buffer.from(JSON.stringify(names))), HEADERS);
    expect([lane.code, plain.code]).toEqual([status.OK, status.OK]);
    expect([lane.encodingHeader, plain.encodingHeader]).toEqual([undefined, "identity"]);
    const [seen, expected] = [lane, plain].map((x) => JSON.parse(unframe(x.body).toString()) as Record<string, unknown>);
    // What grpc-js gives (the second server), so that the comparison below compares something.
    expect(expected).toMatchObject({
      "x-trace-bin": [{ bytes: "000102ff" }],
      "x-multi-bin": [{ bytes: "0102" }, { bytes: "03" }],
      "x-empty-bin": [{ bytes: "" }],
      "x-text": [{ text: "plain" }],
      "X-Text": [{ text: "plain" }],
      "x-no-break-space": [],
      "x-tab": [],
      "x!y": [],
      "grpc-timeout": [],
      te: [],
      "content-type": [],
    });
    for (const name of names) expect({ name, lane: seen[name] }).toEqual({ name, lane: expected[name] });
  });

  it("gives rpc.ts's CallContext the same header text", async () => {
    const utf8 = b64("h\u00e9llo");
    for (const name of ["x-utf8-bin", "x-text", "x-no-break-space", "grpc-timeout", "absent-bin"]) {
      const headers = { ...HEADERS, "x-utf8-bin": utf8 };
      const answers = await both(CHECK, frame(toBinary(CheckRequestSchema, create(CheckRequestSchema, { action: name }))), headers);
      expect(answers.map((x) => x.code)).toEqual([status.OK, status.OK]);
      expect(answers[0].encodingHeader).toBeUndefined();
      const [seen, expected] = answers.map((x) => fromBinary(CheckResponseSchema, unframe(x.body)).message);
      expect({ name, lane: seen }).toEqual({ name, lane: expected });
      if (name === "x-utf8-bin") expect(expected).toBe(JSON.stringify("h\u00e9llo"));
    }
  });
});
