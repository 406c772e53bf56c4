/**
 * Errors that must be answers, against a real server over gRPC and Connect JSON on the machine's
 * Postgres: a reused refresh token (alone and eight at once) is UNAUTHENTICATED with its audit
 * record written; control characters in any text field of an admin or auth request are
 * INVALID_ARGUMENT before they reach the database; names that differ from an existing one only by
 * case (built-in roles, other roles, users) are refused.
 */
import { type DescMethod, type DescService, ScalarType } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { createConnection } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { AuthService } from "../../gen/verdict/v1/auth_pb.js";
import { type TestClient, grpcClient, grpcError } from "../helpers/grpc.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const basic = (user: string, pass: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}` });
const ROOT = basic("root", ROOT_PASSWORD);

type Verdict = Awaited<ReturnType<typeof startTestVerdict>>;

describe("bad input gets an answer, never INTERNAL", () => {
  const schema = freshSchema();
  const logLines: string[] = [];
  let v: Verdict;
  let admin: TestClient<typeof AdminService>;
  let auth: TestClient<typeof AuthService>;

  /** POSTs Connect JSON; returns the HTTP status and the parsed body. */
  const connect = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${v.httpBase}/${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  beforeAll(async () => {
    // Info level: the audit records are written, so serialising them is exercised.
    v = await startTestVerdict({ DATABASE_URL: TEST_DATABASE_URL, VERDICT_LOG_LEVEL: "info" }, schema, logLines);
    admin = grpcClient(AdminService, v.grpcAddress);
    auth = grpcClient(AuthService, v.grpcAddress);
    await admin.createTenant({ id: "acme" }, ROOT);
    await admin.createUser({ username: "alice", password: "alice-password-1" }, ROOT);
    await admin.bindRole({ tenant: "acme", user: "alice", role: "READ" }, ROOT);
  });
  afterAll(async () => {
    admin?.close();
    auth?.close();
    await v?.close();
    await dropSchema(schema);
  });

  const login = async () => (await auth.login({ username: "alice", password: "alice-password-1", tenant: "acme" })).tokens!;

  it("answers a reused refresh token with UNAUTHENTICATED over gRPC and HTTP, and audits the reuse", async () => {
    const first = await login();
    await auth.refresh({ refreshToken: first.refreshToken });
    const reuse = await grpcError(auth.refresh({ refreshToken: first.refreshToken }));
    expect({ code: reuse.code, details: reuse.details }).toMatchObject({ code: status.UNAUTHENTICATED, details: expect.stringContaining("already used") });
    const reused = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.msg === "refresh token reused: session revoked");
    expect(reused).toMatchObject({ level: "warn", session: first.sessionId, component: "audit" });
    expect(typeof reused!.version === "number" || typeof reused!.version === "string").toBe(true);

    const other = await login();
    await auth.refresh({ refreshToken: other.refreshToken });
    const overHttp = await connect("verdict.v1.AuthService/Refresh", { refreshToken: other.refreshToken });
    expect(overHttp).toMatchObject({ status: 401, body: { code: "unauthenticated" } });
  });

  it("answers eight concurrent Refresh calls with one token: at most one pair, the rest UNAUTHENTICATED", async () => {
    const t = await login();
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => auth.refresh({ refreshToken: t.refreshToken })));
    const codes = results.map((r) => (r.status === "fulfilled" ? "ok" : (r.reason as { code: number }).code));
    expect(codes.filter((c) => c === "ok").length).toBeLessThanOrEqual(1);
    expect(codes.filter((c) => c !== "ok").every((c) => c === status.UNAUTHENTICATED)).toBe(true);
    // Logins one after another (concurrent ones are attempts the login limiter holds back), then distinct refreshes at once.
    const fresh: string[] = [];
    for (let i = 0; i < 8; i++) fresh.push((await login()).refreshToken);
    const overHttp = await Promise.all(fresh.map((refreshToken) => connect("verdict.v1.AuthService/Refresh", { refreshToken })));
    expect(overHttp.map((r) => r.status)).toEqual(Array(8).fill(200));
    const one = await login();
    const racing = await Promise.all(Array.from({ length: 8 }, () => connect("verdict.v1.AuthService/Refresh", { refreshToken: one.refreshToken })));
    expect(racing.filter((r) => r.status !== 200 && r.status !== 401)).toEqual([]);
  });

  it("refuses NUL and other control characters in Login and Basic usernames with INVALID_ARGUMENT", async () => {
    for (const username of ["ali\u0000ce", "alice\u0000", "ali\u001bce", "ali\u007fce", "ali\u0085ce"]) {
      const err = await grpcError(auth.login({ username, password: "alice-password-1" }));
      expect({ username, code: err.code }).toEqual({ username, code: status.INVALID_ARGUMENT });
      expect(err.details).toMatch(/username.*control character/);
      const byBasic = await grpcError(admin.listTenants({}, basic(username, "alice-password-1")));
      expect({ username, code: byBasic.code }).toEqual({ username, code: status.INVALID_ARGUMENT });
    }
    const overHttp = await connect("verdict.v1.AuthService/Login", { username: "ali\u0000ce", password: "x-password-123" });
    expect(overHttp).toMatchObject({ status: 400, body: { code: "invalid_argument" } });
    const basicHttp = await connect("verdict.v1.AdminService/ListTenants", {}, basic("ali\u0000ce", "x"));
    expect(basicHttp).toMatchObject({ status: 400, body: { code: "invalid_argument" } });
  });

  it("refuses control characters in every text field of admin requests with INVALID_ARGUMENT naming the field", async () => {
    const cases: Array<[string, () => Promise<unknown>, string]> = [
      ["tenant display name", () => admin.createTenant({ id: "nul-tenant", displayName: "Acme\u0000Corp" }, ROOT), "display_name"],
      ["role description", () => admin.putRole({ name: "nul-role", permissions: ["read:x"], description: "a\u0000b" }, ROOT), "description"],
      ["role permission", () => admin.putRole({ name: "nul-role", permissions: ["read:x\u0000"] }, ROOT), "permissions"],
      ["key name", () => admin.createApiKey({ name: "ci\u0000key" }, ROOT), "name"],
      ["grant statement", () => admin.grant({ tenant: "acme", statement: "GRANT READ TO ali\u0000ce" }, ROOT), "statement"],
      ["username", () => admin.createUser({ username: "bo\u0000b", password: "bob-password-12" }, ROOT), "username"],
      ["new password", () => admin.changePassword({ user: "alice", newPassword: "new\u0000password-1" }, ROOT), "new_password"],
      ["user reference", () => admin.getUser({ user: "ali\u0000ce" }, ROOT), "user"],
      ["tab in a name", () => admin.createApiKey({ name: "ci\tkey" }, ROOT), "name"],
    ];
    for (const [what, call, field] of cases) {
      const err = await grpcError(call());
      expect({ what, code: err.code }).toEqual({ what, code: status.INVALID_ARGUMENT });
      expect({ what, details: err.details }).toEqual({ what, details: expect.stringContaining(field) });
    }
    const overHttp = await connect("verdict.v1.AdminService/CreateTenant", { id: "nul-tenant", displayName: "a\u0000b" }, ROOT);
    expect(overHttp).toMatchObject({ status: 400, body: { code: "invalid_argument" } });
    expect((await admin.listTenants({}, ROOT)).tenants.map((t) => t.id)).not.toContain("nul-tenant");
  });

  it("answers an absolute-form request target that is not a URL with 404 and keeps serving", async () => {
    // Node hands "http://[/oauth2/..." over as req.url; parsing it must not throw out of the request handler.
    const statusLine = await new Promise<string>((resolve, reject) => {
      const socket = createConnection(Number(new URL(v.httpBase).port), "127.0.0.1", () =>
        socket.write("GET http://[/oauth2/github/authorize HTTP/1.1\r\nHost: verdict\r\nConnection: close\r\n\r\n"),
      );
      socket.once("data", (chunk) => {
        resolve(String(chunk).split("\r\n")[0]);
        socket.destroy();
      });
      socket.once("error", reject);
    });
    expect(statusLine).toBe("HTTP/1.1 404 Not Found");
    expect((await fetch(`${v.httpBase}/healthz`)).status).toBe(200);
  });

  it("refuses role names that differ from a built-in or another role only by case", async () => {
    for (const name of ["Read", "read", "wRITE", "Admin", "super"]) {
      const err = await grpcError(admin.putRole({ name, permissions: ["read:orders"] }, ROOT));
      expect({ name, code: err.code }).toEqual({ name, code: status.INVALID_ARGUMENT });
      expect(err.details).toContain("built-in");
    }
    await admin.putRole({ name: "order-reader", permissions: ["read:orders"] }, ROOT);
    const twin = await grpcError(admin.putRole({ name: "Order-Reader", permissions: ["*"] }, ROOT));
    expect(twin.code).toBe(status.ALREADY_EXISTS);
    expect(twin.details).toContain("order-reader");
    await admin.putRole({ name: "order-reader", permissions: ["read:orders", "list:orders"] }, ROOT);
    expect((await admin.listRoles({}, ROOT)).roles.map((r) => r.name).filter((n) => n.toLowerCase() === "order-reader")).toEqual(["order-reader"]);
  });

  it("refuses usernames that differ from an existing one only by case, root included", async () => {
    for (const username of ["Root", "ROOT", "Alice"]) {
      const err = await grpcError(admin.createUser({ username, password: "twin-password-1" }, ROOT));
      expect({ username, code: err.code }).toEqual({ username, code: status.ALREADY_EXISTS });
    }
    expect((await grpcError(admin.createTenant({ id: "*" }, ROOT))).code).toBe(status.INVALID_ARGUMENT);
    expect((await grpcError(admin.createTenant({ id: "Acme" }, ROOT))).code).toBe(status.INVALID_ARGUMENT);
  });
});

describe("every admin and auth method, every awkward value: an answer, never INTERNAL", () => {
  const schema = freshSchema();
  let v: Verdict;
  let rootKey: Record<string, string> = {};

  beforeAll(async () => {
    // Login limits above the failed logins this test sends (dozens, all from this address), so that
    // every awkward Login reaches the store and argon2 instead of being refused as too many.
    v = await startTestVerdict({ DATABASE_URL: TEST_DATABASE_URL, VERDICT_LOGIN_MAX_ATTEMPTS: "10000", VERDICT_LOGIN_MAX_ATTEMPTS_PER_ADDRESS: "10000" }, schema);
    const admin = grpcClient(AdminService, v.grpcAddress);
    await admin.createTenant({ id: "acme" }, ROOT);
    await admin.createUser({ username: "alice", password: "alice-password-1" }, ROOT);
    // Root's API key: the same powers as root's password without an argon2 verification per call.
    rootKey = { "x-api-key": (await admin.createApiKey({ name: "fuzz" }, ROOT)).secret };
    admin.close();
  });
  afterAll(async () => {
    await v?.close();
    await dropSchema(schema);
  });

  const strings = ["", "\u0000", "a\u0000b", "x".repeat(5000), "*", "ünïcødé-名前", "READ", "Read", "root", "acme", "-1", "' OR 1=1 --", "\uD800", "a\u202Eb"];
  const int64s = [0n, -1n, 1n, 9_223_372_036_854_775_807n, -9_223_372_036_854_775_808n, BigInt(Date.now() + 3_600_000)];

  /** A plausible value per field name, so that a request reaches deep before one field goes awkward. */
  const plausible: Record<string, unknown> = {
    id: "acme", tenant: "acme", user: "alice", owner: "", username: "fuzz-user", name: "fuzz-name", role: "READ",
    password: "fuzz-password-1", newPassword: "fuzz-password-2", currentPassword: "", statement: "GRANT READ TO alice",
    displayName: "", description: "", permissions: ["read:orders"], refreshToken: "", expireTimeUnixMs: 0n,
  };

  /** The plausible request, then one variant per field and awkward value of its type. */
  function requests(method: DescMethod): Array<Record<string, unknown>> {
    const base: Record<string, unknown> = {};
    for (const field of method.input.fields) if (field.localName in plausible) base[field.localName] = plausible[field.localName];
    const out = [base];
    for (const field of method.input.fields) {
      const f = field.localName;
      if (field.fieldKind === "scalar" && field.scalar === ScalarType.STRING) for (const s of strings) out.push({ ...base, [f]: s });
      else if (field.fieldKind === "list" && field.scalar === ScalarType.STRING) for (const s of strings) out.push({ ...base, [f]: [s] });
      else if (field.fieldKind === "scalar" && field.scalar === ScalarType.INT64) for (const n of int64s) out.push({ ...base, [f]: n });
      else if (field.fieldKind === "scalar" && field.scalar === ScalarType.BOOL) out.push({ ...base, [f]: true });
    }
    return out;
  }

  it.each([
    ["AdminService", AdminService],
    ["AuthService", AuthService],
  ] as const)("%s answers every awkward request with a status that is not INTERNAL or UNKNOWN", async (_name, service) => {
    const client = grpcClient(service as DescService, v.grpcAddress) as unknown as Record<string, (req: unknown, headers?: Record<string, string>) => Promise<unknown>> & { close(): void };
    const failures: string[] = [];
    try {
      // Destructive methods last, so the others see the fixture; root's own password is never changed (user "" is root).
      const methods = [...(service as DescService).methods].sort((a, b) => Number(/Delete|ChangePassword|Disabled/.test(a.name)) - Number(/Delete|ChangePassword|Disabled/.test(b.name)));
      for (const method of methods) {
        for (const [i, req] of requests(method).entries()) {
          if (method.name === "ChangePassword" && req.user === "") continue;
          // Unauthenticated only for the plausible request: the credential is checked before any field.
          for (const headers of i === 0 ? [rootKey, {}] : [rootKey]) {
            const code = await client[method.localName](req, headers).then(
              () => status.OK,
              (e: { code: number }) => e.code,
            );
            if (code === status.INTERNAL || code === status.UNKNOWN) failures.push(`${method.name} ${JSON.stringify(req, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : typeof x === "string" && x.length > 40 ? `${x.slice(0, 10)}...(${x.length})` : x))} -> ${status[code]}`);
          }
        }
      }
    } finally {
      client.close();
    }
    expect(failures).toEqual([]);
  }, 120_000);
});
