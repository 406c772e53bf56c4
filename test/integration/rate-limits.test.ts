/**
 * Rate limits inside Check, against a real server over real gRPC and Connect JSON: the default
 * limits, cost, CheckBatch, and the answer's standing (limit, remaining, reset, scope, window).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { DecisionService } from "../../gen/verdict/v1/decision_pb.js";
import { RateLimitScope, RateLimitWindow, Reason } from "../../gen/verdict/v1/types_pb.js";
import { type TestClient, grpcClient } from "../helpers/grpc.js";
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
