/**
 * What an operator reads off a running replica: the admin request counter, CheckBatch's latency
 * series, which transport answered, health of every mounted service, and the warning about plain
 * signing keys on the very first start. A real server on the machine's Postgres.
 */
import { status } from "@grpc/grpc-js";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { AuthService } from "../../gen/verdict/v1/auth_pb.js";
import { DecisionService } from "../../gen/verdict/v1/decision_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { type TestClient, grpcClient, grpcError } from "../helpers/grpc.js";
import { envelope, grpcStatusOf, post } from "../helpers/http-protocols.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const ROOT = { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString("base64")}` };
const UNENCRYPTED = "signing keys are stored unencrypted";
const KEK = "11".repeat(32);

/** The value of the one series of `name` carrying every label of `labels`; 0 when there is none. */
function sample(metrics: string, name: string, labels: Record<string, string>): number {
  for (const line of metrics.split("\n")) {
    const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...m[2].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return 0;
}

describe("observability: request counters, CheckBatch latency, transports, health, start-up warnings", () => {
  const schema = freshSchema();
  const logs: string[] = [];
  let v: Awaited<ReturnType<typeof startTestVerdict>>;
  let admin: TestClient<typeof AdminService>;
  let auth: TestClient<typeof AuthService>;
  let decision: TestClient<typeof DecisionService>;
  let health: TestClient<typeof Health>;
  const scrape = async () => (await fetch(`${v.httpBase}/metrics`)).text();
  const connect = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${v.httpBase}/${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });

  beforeAll(async () => {
    v = await startTestVerdict({ DATABASE_URL: TEST_DATABASE_URL, VERDICT_LOG_LEVEL: "warn" }, schema, logs);
    admin = grpcClient(AdminService, v.grpcAddress);
    auth = grpcClient(AuthService, v.grpcAddress);
    decision = grpcClient(DecisionService, v.grpcAddress);
    health = grpcClient(Health, v.grpcAddress);
  });
  afterAll(async () => {
    for (const c of [admin, auth, decision, health]) c?.close();
    await v?.close();
    await dropSchema(schema);
  });

  it("warns that signing keys are stored unencrypted on the first start, which creates them", () => {
    expect(logs.filter((l) => l.includes(UNENCRYPTED))).toHaveLength(1);
  });

  it("does not warn when a key-encryption key seals them", async () => {
    const sealed = freshSchema();
    const lines: string[] = [];
    const w = await startTestVerdict({ DATABASE_URL: TEST_DATABASE_URL, VERDICT_LOG_LEVEL: "warn", VERDICT_KEY_ENCRYPTION_KEY: KEK }, sealed, lines);
    await w.close();
    await dropSchema(sealed);
    expect(lines.join("\n")).not.toContain(UNENCRYPTED);
  });

  it("reports every mounted service in health, AuthService included, over gRPC and Connect", async () => {
    for (const service of ["", DecisionService.typeName, AdminService.typeName, AuthService.typeName, "envoy.service.auth.v3.Authorization"]) {
      expect((await health.check({ service })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    }
    expect((await grpcError(health.check({ service: "verdict.v1.NoSuchService" }))).code).toBe(status.NOT_FOUND);
    const res = await connect("grpc.health.v1.Health/Check", { service: AuthService.typeName });
    expect(await res.json()).toEqual({ status: "SERVING" });
  });

  it("counts every admin and auth RPC by method, result code and transport", async () => {
    await admin.listTenants({}, ROOT);
    await admin.listTenants({}, ROOT);
    expect((await grpcError(admin.listTenants({}))).code).toBe(status.UNAUTHENTICATED);
    expect((await connect("verdict.v1.AdminService/ListTenants", {}, ROOT)).status).toBe(200);
    await auth.login({ username: "root", password: ROOT_PASSWORD, tenant: "" });
    expect((await connect("verdict.v1.AuthService/Login", { username: "root", password: "wrong-password-1", tenant: "" })).status).toBe(401);
    const m = await scrape();
    const admins = (labels: Record<string, string>) => sample(m, "verdict_admin_requests_total", labels);
    expect(admins({ method: "ListTenants", code: "ok", transport: "grpc" })).toBe(2);
    expect(admins({ method: "ListTenants", code: "unauthenticated", transport: "grpc" })).toBe(1);
    expect(admins({ method: "ListTenants", code: "ok", transport: "connect" })).toBe(1);
    expect(admins({ method: "Login", code: "ok", transport: "grpc" })).toBe(1);
    expect(admins({ method: "Login", code: "unauthenticated", transport: "connect" })).toBe(1);
  });

  it("has a latency series for CheckBatch beside Check", async () => {
    const before = sample(await scrape(), "verdict_check_duration_seconds_count", { rpc: "check_batch" });
    await decision.checkBatch({ credential: "vk_nope", actions: ["read:a", "read:b"], tenant: "acme" });
    await decision.checkBatch({ credential: "vk_nope", actions: ["read:a"], tenant: "acme" });
    const m = await scrape();
    expect(sample(m, "verdict_check_duration_seconds_count", { rpc: "check_batch" }) - before).toBe(2);
    expect(sample(m, "verdict_check_duration_seconds_bucket", { rpc: "check_batch", le: "+Inf" })).toBe(sample(m, "verdict_check_duration_seconds_count", { rpc: "check_batch" }));
  });

  it("says which transport answered each Check and CheckBatch", async () => {
    await decision.check({ credential: "vk_nope", action: "read:a", tenant: "acme" });
    for (let i = 0; i < 3; i++) expect((await connect("verdict.v1.DecisionService/Check", { credential: "vk_nope", action: "read:a", tenant: "acme" })).status).toBe(200);
    expect((await connect("verdict.v1.DecisionService/CheckBatch", { credential: "vk_nope", actions: Array(300).fill("read:a"), tenant: "acme" })).status).toBe(400);
    const m = await scrape();
    const calls = (labels: Record<string, string>) => sample(m, "verdict_decision_requests_total", labels);
    expect(calls({ method: "Check", transport: "grpc", code: "ok" })).toBe(1);
    expect(calls({ method: "Check", transport: "connect", code: "ok" })).toBe(3);
    expect(calls({ method: "CheckBatch", transport: "grpc", code: "ok" })).toBe(2);
    expect(calls({ method: "CheckBatch", transport: "connect", code: "invalid_argument" })).toBe(1);
  });

  it("counts a Connect call whose message does not decode as invalid_argument on the connect transport", async () => {
    const counted = (m: string) => ({
      check: sample(m, "verdict_decision_requests_total", { method: "Check", transport: "connect", code: "invalid_argument" }),
      listTenants: sample(m, "verdict_admin_requests_total", { method: "ListTenants", transport: "connect", code: "invalid_argument" }),
    });
    const before = counted(await scrape());
    // A truncated length-delimited field: connect-es fails to decode it before any handler runs.
    const malformed = (path: string) => fetch(`${v.httpBase}/${path}`, { method: "POST", headers: { "content-type": "application/proto", ...ROOT }, body: Buffer.from([0x0a, 0x05, 0x61]) });
    expect((await malformed("verdict.v1.DecisionService/Check")).status).toBe(400);
    expect((await malformed("verdict.v1.AdminService/ListTenants")).status).toBe(400);
    expect(counted(await scrape())).toEqual({ check: before.check + 1, listTenants: before.listTenants + 1 });
  });

  it("counts every call the HTTP port refuses before its handler by method and code, and answers each with a clear error, never a 500", async () => {
    const CHECK = "/verdict.v1.DecisionService/Check";
    const LIST = "/verdict.v1.AdminService/ListTenants";
    const json = { "content-type": "application/json" };
    const cases: Array<{ why: string; path: string; method?: string; headers: Record<string, string>; body?: Buffer | string; status: number; code: string; message: RegExp }> = [
      { why: "JSON that does not parse", path: CHECK, headers: json, body: "{not json", status: 400, code: "invalid_argument", message: /verdict\.v1\.CheckRequest.*JSON/ },
      { why: "JSON of another shape", path: LIST, headers: { ...json, ...ROOT }, body: "[1]", status: 400, code: "invalid_argument", message: /verdict\.v1\.ListTenantsRequest/ },
      { why: "a body over VERDICT_MAX_REQUEST_BYTES", path: CHECK, headers: json, body: JSON.stringify({ action: "x".repeat(70_000) }), status: 429, code: "resource_exhausted", message: /larger than/ },
      { why: "a gzip body cut short", path: CHECK, headers: { ...json, "content-encoding": "gzip" }, body: gzipSync('{"action":"read:orders"}').subarray(0, 15), status: 400, code: "invalid_argument", message: /decompress/ },
      { why: "a timeout that is not a number", path: LIST, headers: { ...json, ...ROOT, "connect-timeout-ms": "soon" }, body: "{}", status: 400, code: "invalid_argument", message: /timeout/ },
      { why: "an unknown content-encoding", path: LIST, headers: { ...json, ...ROOT, "content-encoding": "snappy" }, body: "{}", status: 501, code: "unimplemented", message: /snappy/ },
      { why: "a content type no protocol reads", path: CHECK, headers: { "content-type": "text/plain" }, body: "{}", status: 415, code: "unimplemented", message: /text\/plain.*application\/json/ },
      { why: "no content type", path: LIST, headers: ROOT, body: "{}", status: 415, code: "unimplemented", message: /content-type.*application\/json/ },
      { why: "GET on a method that takes POST", path: CHECK, method: "GET", headers: {}, status: 405, code: "unimplemented", message: /GET.*POST/ },
      { why: "malformed JSON in gRPC-web", path: CHECK, headers: { "content-type": "application/grpc-web+json" }, body: envelope(Buffer.from("{x")), status: 200, code: "invalid_argument", message: /JSON/ },
      { why: "malformed JSON in gRPC over HTTP/1.1", path: LIST, headers: { "content-type": "application/grpc+json", te: "trailers", ...ROOT }, body: envelope(Buffer.from("{x")), status: 200, code: "invalid_argument", message: /JSON/ },
      { why: "gRPC-web without a message", path: CHECK, headers: { "content-type": "application/grpc-web+proto" }, body: Buffer.alloc(0), status: 200, code: "unimplemented", message: /missing/ },
      // Refused by the handler itself (no credential): counted once, as before.
      { why: "no credential", path: LIST, headers: json, body: "{}", status: 401, code: "unauthenticated", message: /credential/ },
    ];
    const counters: Record<string, string> = { [CHECK]: "verdict_decision_requests_total", [LIST]: "verdict_admin_requests_total" };
    const count = (m: string, path: string, code: string) => sample(m, counters[path], { method: path.split("/")[2], transport: "connect", code });
    const series = [...new Set(cases.map((c) => `${c.path} ${c.code}`))].map((s) => s.split(" "));
    const before = await scrape();
    const wrong: string[] = [];
    for (const c of cases) {
      const answer = c.method === "GET" ? await fetch(`${v.httpBase}${c.path}`).then(async (r) => ({ status: r.status, headers: { "content-type": r.headers.get("content-type") ?? undefined }, body: Buffer.from(await r.arrayBuffer()), trailers: {} })) : await post(v.httpBase, c.path, c.headers, c.body ?? "");
      let got: { code: string; message: string };
      if (String(answer.headers["content-type"]).startsWith("application/grpc")) {
        const s = grpcStatusOf(answer);
        got = { code: Object.entries(status).find(([, n]) => n === s.code)?.[0].toLowerCase() ?? String(s.code), message: s.message };
      } else {
        got = answer.headers["content-type"] === "application/json" ? (JSON.parse(answer.body.toString()) as { code: string; message: string }) : { code: "(no body)", message: answer.body.toString() };
      }
      if (answer.status !== c.status || got.code !== c.code || !c.message.test(got.message)) wrong.push(`${c.why}: ${answer.status} ${got.code} ${got.message}`);
    }
    expect(wrong).toEqual([]);
    const after = await scrape();
    const expected = Object.fromEntries(series.map(([path, code]) => [`${path} ${code}`, cases.filter((c) => c.path === path && c.code === code).length]));
    const counted = Object.fromEntries(series.map(([path, code]) => [`${path} ${code}`, count(after, path, code) - count(before, path, code)]));
    expect(counted).toEqual(expected);
    expect(logs.filter((l) => l.includes("rpc failed"))).toEqual([]);
  });
});
