/**
 * The Login limiter and the argon2 slot under abuse, against real servers on the machine's
 * Postgres, over gRPC and Connect JSON. Loopback has the whole 127.0.0.0/8, so HTTP requests come
 * from different socket addresses (127.0.0.2, ...) to stand for different clients.
 */
import { status } from "@grpc/grpc-js";
import { Agent, request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { AuthService } from "../../gen/verdict/v1/auth_pb.js";
import { type TestClient, grpcClient, grpcError } from "../helpers/grpc.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const ROOT = { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString("base64")}` };
const basic = (user: string, pass: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}` });
const USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "gina"];
const password = (name: string) => `${name}-password-1`;

type Verdict = Awaited<ReturnType<typeof startTestVerdict>>;

/** POSTs JSON from a chosen local address; resolves with the HTTP status and the Connect error code. */
function httpPost(
  base: string,
  path: string,
  body: unknown,
  from = "127.0.0.1",
  headers: Record<string, string> = {},
  agent: Agent | false = false,
): Promise<{ status: number; code: string }> {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, path: url.pathname, method: "POST", localAddress: from, agent, headers: { "content-type": "application/json", ...headers } },
      (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (d: string) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, code: res.statusCode === 200 ? "" : ((JSON.parse(text) as { code?: string }).code ?? "") }));
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

async function setUp(v: Verdict): Promise<void> {
  const admin = grpcClient(AdminService, v.grpcAddress);
  try {
    for (const name of USERS) await admin.createUser({ username: name, password: password(name) }, ROOT);
  } finally {
    admin.close();
  }
}

describe("login limiter", () => {
  const schema = freshSchema();
  let v: Verdict;
  let auth: TestClient<typeof AuthService>;
  let admin: TestClient<typeof AdminService>;
  const httpLogin = (username: string, pass: string, from?: string, headers?: Record<string, string>) =>
    httpPost(v.httpBase, "/verdict.v1.AuthService/Login", { username, password: pass }, from, headers);

  beforeAll(async () => {
    v = await startTestVerdict(
      { DATABASE_URL: TEST_DATABASE_URL, VERDICT_LOGIN_MAX_ATTEMPTS: "5", VERDICT_LOGIN_MAX_ATTEMPTS_PER_ADDRESS: "12", VERDICT_TRUSTED_PROXIES: "127.0.0.1/32" },
      schema,
    );
    await setUp(v);
    auth = grpcClient(AuthService, v.grpcAddress);
    admin = grpcClient(AdminService, v.grpcAddress);
  });
  afterAll(async () => {
    auth?.close();
    admin?.close();
    await v?.close();
    await dropSchema(schema);
  });

  it("tells HTTP callers apart by their socket address: guesses from one do not lock out another", async () => {
    const answers = [];
    for (let i = 0; i < 7; i++) answers.push((await httpLogin("bob", `wrong-password-${i}`, "127.0.0.2")).status);
    expect(answers).toEqual([401, 401, 401, 401, 401, 429, 429]);
    expect((await httpLogin("bob", password("bob"), "127.0.0.2")).status).toBe(429);
    expect((await httpLogin("bob", password("bob"), "127.0.0.1")).status).toBe(200);
  });

  it("keeps one budget per username and address across gRPC, Connect JSON and Basic admin calls", async () => {
    for (let i = 0; i < 3; i++) expect((await httpLogin("carol", `wrong-password-${i}`)).status).toBe(401);
    expect((await grpcError(auth.login({ username: "carol", password: "wrong-password-3" }))).code).toBe(status.UNAUTHENTICATED);
    expect((await grpcError(admin.listTenants({}, basic("carol", "wrong-password-4")))).code).toBe(status.UNAUTHENTICATED);
    // Five failures from 127.0.0.1, whichever way they came: the right password is refused everywhere.
    expect((await grpcError(auth.login({ username: "carol", password: password("carol") }))).code).toBe(status.RESOURCE_EXHAUSTED);
    expect((await httpLogin("carol", password("carol"))).status).toBe(429);
    expect((await grpcError(admin.listTenants({}, basic("carol", password("carol"))))).code).toBe(status.RESOURCE_EXHAUSTED);
    // Basic guesses alone are limited too.
    for (let i = 0; i < 5; i++) expect((await grpcError(admin.listTenants({}, basic("gina", `wrong-password-${i}`)))).code).toBe(status.UNAUTHENTICATED);
    expect((await grpcError(admin.listTenants({}, basic("gina", password("gina"))))).code).toBe(status.RESOURCE_EXHAUSTED);
  });

  it("believes X-Forwarded-For only from a trusted proxy", async () => {
    // 127.0.0.4 is not a trusted proxy: its X-Forwarded-For is ignored, all its guesses are its own.
    for (let i = 0; i < 5; i++) expect((await httpLogin("dave", `wrong-password-${i}`, "127.0.0.4", { "x-forwarded-for": `10.9.0.${i}` })).status).toBe(401);
    expect((await httpLogin("dave", password("dave"), "127.0.0.4", { "x-forwarded-for": "10.9.9.9" })).status).toBe(429);
    // 127.0.0.1 is trusted: the client is the address it forwards.
    for (let i = 0; i < 5; i++) expect((await httpLogin("erin", `wrong-password-${i}`, "127.0.0.1", { "x-forwarded-for": "10.1.1.1" })).status).toBe(401);
    expect((await httpLogin("erin", password("erin"), "127.0.0.1", { "x-forwarded-for": "10.1.1.1" })).status).toBe(429);
    expect((await grpcError(auth.login({ username: "erin", password: password("erin") }, { "x-forwarded-for": "10.1.1.1" }))).code).toBe(status.RESOURCE_EXHAUSTED);
    expect((await httpLogin("erin", password("erin"), "127.0.0.1", { "x-forwarded-for": "10.2.2.2" })).status).toBe(200);
    // A client cannot hide behind an address it prepends: the proxy appended the real one last.
    expect((await httpLogin("erin", password("erin"), "127.0.0.1", { "x-forwarded-for": "10.2.2.2, 10.1.1.1" })).status).toBe(429);
  });

  it("limits failures per address whatever the usernames", async () => {
    const answers = [];
    for (let i = 0; i < 14; i++) answers.push((await httpLogin(`nobody-${i}`, "some-password-123", "127.0.0.3")).status);
    expect(answers).toEqual([...Array(12).fill(401), 429, 429]);
    expect((await httpLogin("alice", password("alice"), "127.0.0.3")).status).toBe(429);
    expect((await httpLogin("alice", password("alice"), "127.0.0.5")).status).toBe(200);
  });

  it("counts an IPv6 client by its /64: every address of one /64 shares the per-address budget", async () => {
    // Each guess from another address of 2001:db8:77:1::/64, spelled every way (as a proxy may forward it).
    const spellings = (i: number) => [`2001:db8:77:1::${i.toString(16)}`, `2001:0DB8:0077:0001:0000:${i.toString(16).padStart(4, "0")}:0000:0001`, `2001:db8:77:1:${i.toString(16)}:${i.toString(16)}::`];
    const answers = [];
    for (let i = 1; i <= 14; i++) answers.push((await httpLogin(`nobody6-${i}`, "some-password-123", "127.0.0.1", { "x-forwarded-for": spellings(i)[i % 3] })).status);
    expect(answers).toEqual([...Array(12).fill(401), 429, 429]);
    expect((await httpLogin("alice", password("alice"), "127.0.0.1", { "x-forwarded-for": "2001:db8:77:1:ffff:ffff:ffff:fffe" })).status).toBe(429);
    expect((await grpcError(auth.login({ username: "alice", password: password("alice") }, { "x-forwarded-for": "2001:db8:77:1::abcd" }))).code).toBe(status.RESOURCE_EXHAUSTED);
    // The next /64 is another client.
    expect((await httpLogin("alice", password("alice"), "127.0.0.1", { "x-forwarded-for": "2001:db8:77:2::1" })).status).toBe(200);
  });

  it("counts a username's failures per /64 too, and an IPv4-mapped address as its IPv4 address", async () => {
    for (let i = 1; i <= 5; i++) expect((await httpLogin("bob", `wrong-password-${i}`, "127.0.0.1", { "x-forwarded-for": `2001:db8:78:1::${i}` })).status).toBe(401);
    expect((await httpLogin("bob", password("bob"), "127.0.0.1", { "x-forwarded-for": "2001:db8:78:1:1:2:3:4" })).status).toBe(429);
    expect((await httpLogin("bob", password("bob"), "127.0.0.1", { "x-forwarded-for": "2001:db8:78:2::1" })).status).toBe(200);
    // 10.8.8.8 three ways: dotted, mapped and dotted, mapped and in hex.
    for (const from of ["10.8.8.8", "::ffff:10.8.8.8", "::ffff:a08:808", "10.8.8.8", "0:0:0:0:0:ffff:0a08:0808"]) {
      expect((await httpLogin("dave", "wrong-password-x", "127.0.0.1", { "x-forwarded-for": from })).status).toBe(401);
    }
    expect((await httpLogin("dave", password("dave"), "127.0.0.1", { "x-forwarded-for": "::ffff:a08:808" })).status).toBe(429);
    expect((await httpLogin("dave", password("dave"), "127.0.0.1", { "x-forwarded-for": "10.8.8.9" })).status).toBe(200);
  });

  it("reserves the attempt before the password work: 40 concurrent guesses, at most 5 evaluated", async () => {
    // From a client of its own behind the trusted proxy, so that the earlier tests' failures do not count.
    const from = { "x-forwarded-for": "10.5.5.5" };
    const codes = await Promise.all(Array.from({ length: 40 }, (_, i) => grpcError(auth.login({ username: "frank", password: `wrong-password-${i}` }, from)).then((e) => e.code)));
    expect(codes.filter((c) => c === status.UNAUTHENTICATED)).toHaveLength(5);
    expect(codes.filter((c) => c === status.RESOURCE_EXHAUSTED)).toHaveLength(35);
  });
});

describe("argon2 slot under a flood from one address", () => {
  const schema = freshSchema();
  let v: Verdict;
  let auth: TestClient<typeof AuthService>;

  beforeAll(async () => {
    v = await startTestVerdict(
      {
        DATABASE_URL: TEST_DATABASE_URL,
        VERDICT_ARGON2_MEMORY_KIB: "16384",
        VERDICT_ARGON2_TIME_COST: "2",
        VERDICT_LOGIN_MAX_ATTEMPTS_PER_ADDRESS: "10000",
      },
      schema,
    );
    await setUp(v);
    auth = grpcClient(AuthService, v.grpcAddress);
  });
  afterAll(async () => {
    auth?.close();
    await v?.close();
    await dropSchema(schema);
  });

  it("keeps a real user's Login latency within a small multiple of its unloaded latency", async () => {
    const timedLogin = async () => {
      const started = performance.now();
      await auth.login({ username: "alice", password: password("alice") });
      return performance.now() - started;
    };
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    await timedLogin();
    // Unloaded before and after the flood, so that the machine's own load weighs on both sides.
    const unloaded: number[] = [];
    for (let i = 0; i < 8; i++) unloaded.push(await timedLogin());

    // 20 logins with unknown usernames always in flight from 127.0.0.2 (one refused as busy waits a little before the next).
    let flooding = true;
    let floodAnswers = 0;
    const agent = new Agent({ keepAlive: true, localAddress: "127.0.0.2" });
    const flooder = async (n: number) => {
      for (let i = 0; flooding; i++) {
        const r = await httpPost(v.httpBase, "/verdict.v1.AuthService/Login", { username: `flood-${n}-${i}`, password: "flood-password-1" }, "127.0.0.2", {}, agent);
        floodAnswers++;
        if (r.status === 429) await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    const flood = Array.from({ length: 20 }, (_, n) => flooder(n));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const loaded: number[] = [];
    try {
      for (let i = 0; i < 15; i++) loaded.push(await timedLogin());
    } finally {
      flooding = false;
      await Promise.all(flood);
      agent.destroy();
    }
    for (let i = 0; i < 8; i++) unloaded.push(await timedLogin());
    const ratio = median(loaded) / median(unloaded);
    expect(floodAnswers).toBeGreaterThan(20);
    expect(ratio, `unloaded ${median(unloaded).toFixed(1)} ms, under the flood ${median(loaded).toFixed(1)} ms`).toBeLessThan(5);
  });
});
