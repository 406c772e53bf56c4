/**
 * Rate limits inside Check, against a real server over real gRPC and Connect JSON: the default
 * limits, cost, CheckBatch, the answer's standing (limit, remaining, reset, scope, window), and
 * limits set through the Admin API on one replica taking effect on another.
 */
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { DecisionService } from "../../gen/verdict/v1/decision_pb.js";
import { RateLimitScope, RateLimitWindow, Reason } from "../../gen/verdict/v1/types_pb.js";
import { type TestClient, grpcClient, grpcError } from "../helpers/grpc.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const ROOT = { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString("base64")}` };

describe("rate limits in Check", () => {
  const schema = freshSchema();
  let v: Awaited<ReturnType<typeof startTestVerdict>>;
  let admin: TestClient<typeof AdminService>;
  let decision: TestClient<typeof DecisionService>;
  const newKey = async () => (await admin.createApiKey({ name: `k${Math.random()}`, owner: "alice" }, ROOT)).secret;

  beforeAll(async () => {
    v = await startTestVerdict({ DATABASE_URL: TEST_DATABASE_URL, VERDICT_RATE_LIMIT_PER_MINUTE: "5", VERDICT_RATE_LIMIT_PER_HOUR: "8" }, schema);
    admin = grpcClient(AdminService, v.grpcAddress);
    decision = grpcClient(DecisionService, v.grpcAddress);
    await admin.createTenant({ id: "acme" }, ROOT);
    await admin.createUser({ username: "alice", password: "alice-password-1" }, ROOT);
    await admin.grant({ tenant: "acme", statement: "GRANT READ TO alice" }, ROOT);
  });
  afterAll(async () => {
    admin?.close();
    decision?.close();
    await v?.close();
    await dropSchema(schema);
  });

  it("admits the limit, then answers RATE_LIMITED with the seconds until the request fits", async () => {
    const credential = await newKey();
    for (let i = 0; i < 5; i++) {
      const r = await decision.check({ credential, action: "read:orders", tenant: "acme" });
      expect(r).toMatchObject({ allowed: true, reason: Reason.ALLOWED });
      expect(r.rateLimit).toMatchObject({ limit: 5, remaining: 4 - i, scope: RateLimitScope.DEFAULT, window: RateLimitWindow.MINUTE });
      expect(r.rateLimit!.resetSeconds).toBeGreaterThan(55);
      expect(r.rateLimit!.resetSeconds).toBeLessThanOrEqual(63);
    }
    const denied = await decision.check({ credential, action: "read:orders", tenant: "acme" });
    expect(denied).toMatchObject({ allowed: false, reason: Reason.RATE_LIMITED });
    expect(denied.message).toMatch(/rate limit exceeded: 5 per minute \(default limit\); retry in \d+ s/);
    expect(denied.message).not.toContain(credential);
    expect(denied.principal?.username).toBe("alice");
    expect(denied.rateLimit).toMatchObject({ limit: 5, remaining: 0, scope: RateLimitScope.DEFAULT, window: RateLimitWindow.MINUTE });
    expect(denied.rateLimit!.resetSeconds).toBeGreaterThan(55);
    // A forbidden action of a limited credential is limited too (nothing to probe while flooding).
    expect((await decision.check({ credential, action: "write:orders", tenant: "acme" })).reason).toBe(Reason.RATE_LIMITED);
    const metrics = await (await fetch(`${v.httpBase}/metrics`)).text();
    expect(metrics).toMatch(/verdict_rate_limited_total\{scope="default",window="minute"\} [2-9]/);
  });

  it("spends cost units, asks without spending at cost 0, and leaves unaccepted credentials uncounted", async () => {
    const credential = await newKey();
    expect((await decision.check({ credential, action: "read:orders", tenant: "acme", cost: 0 })).rateLimit).toMatchObject({ remaining: 5 });
    expect((await decision.check({ credential, action: "read:orders", tenant: "acme", cost: 4 })).rateLimit).toMatchObject({ remaining: 1 });
    expect((await decision.check({ credential, action: "read:orders", tenant: "acme", cost: 2 })).reason).toBe(Reason.RATE_LIMITED);
    expect((await decision.check({ credential, action: "read:orders", tenant: "acme" })).rateLimit).toMatchObject({ remaining: 0 });
    const asked = await decision.check({ credential, action: "read:orders", tenant: "acme", cost: 0 });
    expect(asked).toMatchObject({ allowed: true, rateLimit: { remaining: 0 } });
    const unknown = await decision.check({ credential: "", action: "read:orders", tenant: "acme" });
    expect(unknown.reason).toBe(Reason.UNAUTHENTICATED);
    expect(unknown.rateLimit).toBeUndefined();
  });

  it("spends one unit per CheckBatch and limits every action of a batch over the limit", async () => {
    const credential = await newKey();
    const actions = ["read:orders", "read:invoices", "write:orders"];
    for (let i = 0; i < 5; i++) {
      const r = await decision.checkBatch({ credential, actions, tenant: "acme" });
      expect(r.decisions.map((d) => d.reason)).toEqual([Reason.ALLOWED, Reason.ALLOWED, Reason.FORBIDDEN]);
      expect(r.rateLimit).toMatchObject({ limit: 5, remaining: 4 - i });
    }
    const limited = await decision.checkBatch({ credential, actions, tenant: "acme" });
    expect(limited.decisions.map((d) => d.reason)).toEqual([Reason.RATE_LIMITED, Reason.RATE_LIMITED, Reason.RATE_LIMITED]);
    expect(limited.rateLimit).toMatchObject({ remaining: 0, window: RateLimitWindow.MINUTE });
  });

  it("answers over Connect JSON with the same fields", async () => {
    const credential = await newKey();
    const post = async (body: object) =>
      (await (await fetch(`${v.httpBase}/verdict.v1.DecisionService/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })).json()) as Record<string, { remaining?: number } & unknown>;
    const r = await post({ credential, action: "read:orders", tenant: "acme", cost: 5 });
    expect(r).toMatchObject({ allowed: true, rateLimit: { limit: 5, scope: "RATE_LIMIT_SCOPE_DEFAULT", window: "RATE_LIMIT_WINDOW_MINUTE" } });
    expect(r.rateLimit.remaining).toBeUndefined();
    const denied = await post({ credential, action: "read:orders", tenant: "acme" });
    expect(denied).toMatchObject({ reason: "REASON_RATE_LIMITED", rateLimit: { limit: 5 } });
    expect(denied.allowed).toBeUndefined();
  });
});

describe("rate limits through the Admin API", () => {
  const schema = freshSchema();
  let a: Awaited<ReturnType<typeof startTestVerdict>>;
  let b: Awaited<ReturnType<typeof startTestVerdict>>;
  let admin: TestClient<typeof AdminService>;
  let checkA: TestClient<typeof DecisionService>;
  let checkB: TestClient<typeof DecisionService>;
  let key = { id: "", secret: "" };

  beforeAll(async () => {
    // Two replicas on one database, without Redis: B follows A's writes by polling the change log.
    a = await startTestVerdict({ DATABASE_URL: TEST_DATABASE_URL, VERDICT_POLL_INTERVAL_MS: "50" }, schema);
    b = await startTestVerdict({ DATABASE_URL: TEST_DATABASE_URL, VERDICT_POLL_INTERVAL_MS: "50" }, schema);
    admin = grpcClient(AdminService, a.grpcAddress);
    checkA = grpcClient(DecisionService, a.grpcAddress);
    checkB = grpcClient(DecisionService, b.grpcAddress);
    await admin.createTenant({ id: "paid" }, ROOT);
    await admin.createTenant({ id: "free" }, ROOT);
    await admin.createUser({ username: "bob", password: "bob-password-12" }, ROOT);
    await admin.putRole({ name: "batch", permissions: ["read:*"] }, ROOT);
    await admin.grant({ tenant: "paid", statement: "GRANT READ TO bob" }, ROOT);
    await admin.grant({ tenant: "free", statement: "GRANT READ TO bob" }, ROOT);
    const created = await admin.createApiKey({ name: "bob-ci", owner: "bob" }, ROOT);
    key = { id: created.apiKey!.id, secret: created.secret };
    await checkB.check({ credential: key.secret, action: "read:orders", tenant: "paid", cost: 0, minVersion: created.version });
  });
  afterAll(async () => {
    for (const c of [admin, checkA, checkB]) c?.close();
    await a?.close();
    await b?.close();
    await dropSchema(schema);
  });

  const limitOf = async (client: TestClient<typeof DecisionService>, tenant: string) =>
    (await client.check({ credential: key.secret, action: "read:orders", tenant, cost: 0 })).rateLimit;

  it("sets a tenant's limits, applied on every replica without restart, and says which scope bit", async () => {
    expect(await limitOf(checkB, "paid")).toMatchObject({ limit: 1000, scope: RateLimitScope.DEFAULT });
    const { version } = await admin.setRateLimit({ target: { target: { case: "tenant", value: "paid" } }, limit: { perMinute: 10_000, perHour: 100_000 } }, ROOT);
    expect((await checkA.check({ credential: key.secret, action: "read:orders", tenant: "paid", cost: 0, minVersion: version })).rateLimit).toMatchObject({
      limit: 10_000,
      scope: RateLimitScope.TENANT,
    });
    const deadline = Date.now() + 5000;
    while ((await limitOf(checkB, "paid"))?.limit !== 10_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(await limitOf(checkB, "paid")).toMatchObject({ limit: 10_000, scope: RateLimitScope.TENANT });
    expect(await limitOf(checkB, "free")).toMatchObject({ limit: 1000, scope: RateLimitScope.DEFAULT });
    expect(await admin.getRateLimit({ target: { target: { case: "tenant", value: "paid" } } }, ROOT)).toMatchObject({ limit: { perMinute: 10_000, perHour: 100_000, burst: 0, shadow: false } });
  });

  it("lets a key go unlimited and a role be tighter; the tightest wins", async () => {
    await admin.setRateLimit({ target: { target: { case: "keyId", value: key.id } }, limit: { perMinute: 0, perHour: 0 } }, ROOT);
    const { version } = await admin.setRateLimit({ target: { target: { case: "role", value: "READ" } }, limit: { perMinute: 3, perHour: 0, burst: 2 } }, ROOT);
    const r = await checkA.check({ credential: key.secret, action: "read:orders", tenant: "free", cost: 0, minVersion: version });
    expect(r.rateLimit).toMatchObject({ limit: 3, scope: RateLimitScope.ROLE, window: RateLimitWindow.MINUTE });
    expect((await admin.listRateLimits({}, ROOT)).limits.map((l) => [l.target?.target.case, l.target?.target.value, l.limit?.perMinute])).toEqual([
      ["keyId", key.id, 0],
      ["role", "READ", 3],
      ["tenant", "paid", 10_000],
    ]);
    const deleted = await admin.deleteRateLimit({ target: { target: { case: "role", value: "READ" } } }, ROOT);
    const after = await checkA.check({ credential: key.secret, action: "read:orders", tenant: "free", cost: 0, minVersion: deleted.version });
    expect(after.rateLimit).toBeUndefined();
  });

  it("refuses bad limits and unknown targets when written, with a clear error", async () => {
    const set = (target: { case: "tenant" | "role" | "keyId"; value: string }, limit?: object) => grpcError(admin.setRateLimit({ target: { target }, limit }, ROOT));
    expect(await set({ case: "tenant", value: "paid" }, { perMinute: 0, burst: 5 })).toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringContaining("burst needs a per_minute limit") });
    expect(await set({ case: "tenant", value: "paid" }, { perMinute: 10, burst: 11 })).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect(await set({ case: "tenant", value: "paid" }, { perMinute: 2_000_000_000 })).toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringContaining("at most") });
    expect(await set({ case: "tenant", value: "paid" })).toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringContaining("limit is required") });
    expect(await set({ case: "tenant", value: "nope" }, { perMinute: 1 })).toMatchObject({ code: status.NOT_FOUND });
    expect(await set({ case: "keyId", value: "not-a-key" }, { perMinute: 1 })).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect(await grpcError(admin.setRateLimit({ limit: { perMinute: 1 } }, ROOT))).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect(await grpcError(admin.getRateLimit({ target: { target: { case: "tenant", value: "free" } } }, ROOT))).toMatchObject({ code: status.NOT_FOUND });
    // A negative number over Connect JSON is refused before it reaches Verdict's checks.
    const res = await fetch(`${a.httpBase}/verdict.v1.AdminService/SetRateLimit`, {
      method: "POST",
      headers: { "content-type": "application/json", ...ROOT },
      body: JSON.stringify({ target: { tenant: "paid" }, limit: { perMinute: -1 } }),
    });
    expect(res.status).toBe(400);
  });

  it("counts shadow hits without denying", async () => {
    const { version } = await admin.setRateLimit({ target: { target: { case: "tenant", value: "free" } }, limit: { perMinute: 1, shadow: true } }, ROOT);
    const first = await checkA.check({ credential: key.secret, action: "read:orders", tenant: "free", minVersion: version });
    const second = await checkA.check({ credential: key.secret, action: "read:orders", tenant: "free" });
    expect([first.allowed, second.allowed]).toEqual([true, true]);
    const metrics = await (await fetch(`${a.httpBase}/metrics`)).text();
    expect(metrics).toMatch(/verdict_rate_limit_shadow_hits_total\{scope="tenant",window="minute"\} [1-9]/);
    await admin.deleteRateLimit({ target: { target: { case: "tenant", value: "free" } } }, ROOT);
  });

  it("needs the admin permission of the target's kind", async () => {
    const bobKey = { "x-api-key": key.secret };
    expect(await grpcError(admin.setRateLimit({ target: { target: { case: "tenant", value: "paid" } }, limit: { perMinute: 1 } }, bobKey))).toMatchObject({ code: status.PERMISSION_DENIED });
    expect(await grpcError(admin.listRateLimits({}, bobKey))).toMatchObject({ code: status.PERMISSION_DENIED });
  });
});
