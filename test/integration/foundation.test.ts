/**
 * The whole story of the foundation issue, against a real server over real gRPC (and Connect
 * JSON over HTTP) on the machine's Postgres.
 */
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { DecisionService } from "../../gen/verdict/v1/decision_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { PrincipalKind, Reason } from "../../gen/verdict/v1/types_pb.js";
import { type TestClient, grpcClient, grpcError } from "../helpers/grpc.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const basic = (user: string, pass: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}` });
const ROOT = basic("root", ROOT_PASSWORD);

describe("foundation: admin, Check, revocation, JSON, metrics, health", () => {
  const schema = freshSchema();
  let v: Awaited<ReturnType<typeof startTestVerdict>>;
  let admin: TestClient<typeof AdminService>;
  let decision: TestClient<typeof DecisionService>;
  let health: TestClient<typeof Health>;
  let aliceKey = "";
  let aliceKeyId = "";
  let rootKey = "";

  beforeAll(async () => {
    v = await startTestVerdict(
      { DATABASE_URL: TEST_DATABASE_URL, VERDICT_KEY_USE_FLUSH_MS: "50", VERDICT_AUDIT_DECISIONS: "true", VERDICT_AUDIT_FLUSH_MS: "20", VERDICT_AUDIT_ALLOW_SAMPLE_RATE: "0" },
      schema,
    );
    admin = grpcClient(AdminService, v.grpcAddress);
    decision = grpcClient(DecisionService, v.grpcAddress);
    health = grpcClient(Health, v.grpcAddress);
  });
  afterAll(async () => {
    admin?.close();
    decision?.close();
    health?.close();
    await v?.close();
    await dropSchema(schema);
  });

  it("reports SERVING over grpc.health.v1", async () => {
    expect((await health.check({})).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect((await health.check({ service: "verdict.v1.DecisionService" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect((await grpcError(health.check({ service: "nope" }))).code).toBe(status.NOT_FOUND);
  });

  it("refuses admin calls without a valid credential", async () => {
    expect((await grpcError(admin.listTenants({}))).code).toBe(status.UNAUTHENTICATED);
    expect((await grpcError(admin.listTenants({}, basic("root", "wrong-password-123")))).code).toBe(status.UNAUTHENTICATED);
    expect((await grpcError(admin.listTenants({}, { "x-api-key": "vk_garbage" }))).code).toBe(status.UNAUTHENTICATED);
  });

  it("lets root set up a tenant, a user, a role, a binding and an API key", async () => {
    const t = await admin.createTenant({ id: "acme", displayName: "Acme" }, ROOT);
    expect(t.tenant?.id).toBe("acme");
    const u = await admin.createUser({ username: "alice", password: "alice-password-1" }, ROOT);
    expect(u.version).toBeGreaterThan(t.version);
    const r = await admin.putRole({ name: "order-reader", permissions: ["read:orders", "list:*"] }, ROOT);
    expect(r.role?.permissions).toEqual(["read:orders", "list:*"]);
    await admin.bindRole({ tenant: "acme", user: "alice", role: "order-reader" }, ROOT);
    const k = await admin.createApiKey({ name: "alice-ci", owner: "alice" }, ROOT);
    expect(k.secret).toMatch(/^vk_[a-z2-7]{12}_/);
    expect(k.apiKey?.id).toBe(k.secret.slice(3, 15));
    aliceKey = k.secret;
    aliceKeyId = k.apiKey!.id;
    const listed = await admin.listApiKeys({ owner: "alice" }, ROOT);
    expect(listed.apiKeys.map((x) => x.id)).toEqual([aliceKeyId]);
    expect(JSON.stringify(listed, (_k, x) => (typeof x === "bigint" ? String(x) : x))).not.toContain(aliceKey.slice(16));
    rootKey = (await admin.createApiKey({ name: "root-ops" }, ROOT)).secret;
  });

  it("rejects bad admin input with clear errors", async () => {
    const bad = await grpcError(admin.putRole({ name: "broken", permissions: ["read:ord*"] }, ROOT));
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
    expect(bad.details).toContain('"read:ord*"');
    expect((await grpcError(admin.createTenant({ id: "acme" }, ROOT))).code).toBe(status.ALREADY_EXISTS);
    expect((await grpcError(admin.createTenant({ id: "Bad Id" }, ROOT))).code).toBe(status.INVALID_ARGUMENT);
    expect((await grpcError(admin.createUser({ username: "bob", password: "short" }, ROOT))).code).toBe(status.INVALID_ARGUMENT);
    expect((await grpcError(admin.bindRole({ tenant: "nowhere", user: "alice", role: "READ" }, ROOT))).code).toBe(status.NOT_FOUND);
    expect((await grpcError(admin.bindRole({ tenant: "acme", user: "alice", role: "SUPER" }, ROOT))).code).toBe(status.PERMISSION_DENIED);
    expect((await grpcError(admin.putRole({ name: "ADMIN", permissions: ["read:*"] }, ROOT))).code).toBe(status.FAILED_PRECONDITION);
    expect((await grpcError(admin.grant({ tenant: "acme", statement: "GIVE READ TO alice" }, ROOT))).code).toBe(status.INVALID_ARGUMENT);
    // alice's key may not administer
    expect((await grpcError(admin.createTenant({ id: "evil" }, { "x-api-key": aliceKey }))).code).toBe(status.PERMISSION_DENIED);
  });

  it("answers Check with allow, deny and reason codes, the principal and the version", async () => {
    const allow = await decision.check({ credential: aliceKey, action: "read:orders", tenant: "acme" });
    expect(allow.allowed).toBe(true);
    expect(allow.reason).toBe(Reason.ALLOWED);
    expect(allow.principal).toMatchObject({ kind: PrincipalKind.API_KEY, username: "alice", keyId: aliceKeyId, tenant: "acme", roles: ["order-reader"] });
    expect(allow.policyVersion).toBeGreaterThan(0n);
    expect(allow.decisionId).not.toBe("");

    const cases: Array<[credential: string, action: string, tenant: string, reason: Reason]> = [
      [aliceKey, "write:orders", "acme", Reason.FORBIDDEN],
      [aliceKey, "list:invoices", "acme", Reason.ALLOWED],
      [aliceKey, "read:orders", "globex", Reason.UNKNOWN_TENANT],
      ["", "read:orders", "acme", Reason.UNAUTHENTICATED],
      ["vk_notakey", "read:orders", "acme", Reason.MALFORMED_CREDENTIAL],
      [aliceKey.slice(0, -1) + (aliceKey.endsWith("A") ? "B" : "A"), "read:orders", "acme", Reason.MALFORMED_CREDENTIAL],
      ["not a credential", "read:orders", "acme", Reason.MALFORMED_CREDENTIAL],
      [aliceKey, "", "acme", Reason.INVALID_REQUEST],
      [aliceKey, "read:" + "x".repeat(1000), "acme", Reason.INVALID_REQUEST],
      [aliceKey, "read:orders", "t".repeat(500), Reason.INVALID_REQUEST],
      [rootKey, "anything:at-all", "acme", Reason.ALLOWED],
    ];
    for (const [credential, action, tenant, reason] of cases) {
      const d = await decision.check({ credential, action, tenant });
      expect([credential.slice(0, 8), action.slice(0, 20), tenant.slice(0, 10), Reason[d.reason]]).toEqual([
        credential.slice(0, 8),
        action.slice(0, 20),
        tenant.slice(0, 10),
        Reason[reason],
      ]);
      expect(d.allowed).toBe(reason === Reason.ALLOWED);
      expect(d.message).not.toContain(aliceKey);
    }
  });

  it("denies a principal in a tenant it does not belong to", async () => {
    await admin.createTenant({ id: "globex" }, ROOT);
    const d = await decision.check({ credential: aliceKey, action: "read:orders", tenant: "globex" });
    expect(d.reason).toBe(Reason.WRONG_TENANT);
  });

  it("decides many actions with CheckBatch", async () => {
    const b = await decision.checkBatch({ credential: aliceKey, actions: ["read:orders", "write:orders", "list:x"], tenant: "acme" });
    expect(b.decisions.map((d) => [d.action, d.allowed, Reason[d.reason]])).toEqual([
      ["read:orders", true, "ALLOWED"],
      ["write:orders", false, "FORBIDDEN"],
      ["list:x", true, "ALLOWED"],
    ]);
    expect(b.principal?.username).toBe("alice");
    const tooMany = await grpcError(decision.checkBatch({ credential: aliceKey, actions: Array(300).fill("read:x"), tenant: "acme" }));
    expect(tooMany.code).toBe(status.INVALID_ARGUMENT);
  });

  it("reflects a role change and a grant on the very next Check", async () => {
    const put = await admin.putRole({ name: "order-reader", permissions: ["*:orders"] }, ROOT);
    const d = await decision.check({ credential: aliceKey, action: "write:orders", tenant: "acme" });
    expect(d.allowed).toBe(true);
    expect(d.policyVersion).toBeGreaterThanOrEqual(put.version);
    await admin.grant({ tenant: "globex", statement: "GRANT READ, WRITE TO alice" }, ROOT);
    const g = await decision.check({ credential: aliceKey, action: "delete:invoices", tenant: "globex" });
    expect(g.allowed).toBe(true);
    expect(g.principal?.roles).toEqual(["READ", "WRITE"]);
    await admin.grant({ tenant: "globex", statement: "revoke write from alice" }, ROOT);
    expect((await decision.check({ credential: aliceKey, action: "delete:invoices", tenant: "globex" })).reason).toBe(Reason.FORBIDDEN);
  });

  it("narrows a key to its own permissions and to a tenant", async () => {
    const narrow = await admin.createApiKey({ name: "narrow", owner: "alice", permissions: ["read:*"], tenant: "acme" }, ROOT);
    expect((await decision.check({ credential: narrow.secret, action: "read:orders", tenant: "acme" })).allowed).toBe(true);
    expect((await decision.check({ credential: narrow.secret, action: "write:orders", tenant: "acme" })).reason).toBe(Reason.FORBIDDEN);
    expect((await decision.check({ credential: narrow.secret, action: "read:orders", tenant: "globex" })).reason).toBe(Reason.WRONG_TENANT);
    // Long enough for the create and the first Check to finish before it on a busy machine.
    const expiresAt = Date.now() + 3000;
    const soon = await admin.createApiKey({ name: "short-lived", owner: "alice", expireTimeUnixMs: BigInt(expiresAt) }, ROOT);
    const readOrders = () => decision.check({ credential: soon.secret, action: "read:orders", tenant: "acme" });
    expect((await readOrders()).allowed).toBe(true);
    // Valid until its expiry (the server runs in this process, on this clock), EXPIRED after it.
    let answer = await readOrders();
    while (answer.reason !== Reason.EXPIRED) {
      const askedAt = Date.now();
      expect(answer.allowed, "allowed until the expiry").toBe(true);
      expect(askedAt, "still valid 10 s after its expiry").toBeLessThan(expiresAt + 10_000);
      await new Promise((r) => setTimeout(r, 50));
      answer = await readOrders();
    }
    expect(Date.now(), "EXPIRED only after the expiry").toBeGreaterThanOrEqual(expiresAt);
  });

  it("rotates a key: the new secret works, the old one stops at once", async () => {
    const rotated = await admin.rotateApiKey({ id: aliceKeyId }, ROOT);
    expect(rotated.apiKey?.id).toBe(aliceKeyId);
    expect((await decision.check({ credential: aliceKey, action: "read:orders", tenant: "acme" })).reason).toBe(Reason.UNKNOWN_CREDENTIAL);
    expect((await decision.check({ credential: rotated.secret, action: "read:orders", tenant: "acme" })).allowed).toBe(true);
    aliceKey = rotated.secret;
  });

  it("records last use off the hot path", async () => {
    const before = Date.now();
    await decision.check({ credential: aliceKey, action: "read:orders", tenant: "acme" });
    // Written by the next flush (every 50 ms here); a busy machine may delay it, so wait for it.
    await vi.waitFor(
      async () => {
        const key = (await admin.listApiKeys({ owner: "alice" }, ROOT)).apiKeys.find((k) => k.id === aliceKeyId)!;
        expect(Number(key.lastUsedTimeUnixMs)).toBeGreaterThanOrEqual(before);
      },
      { timeout: 10_000, interval: 50 },
    );
  });

  it("denies at once after disabling the user, and after revoking the key", async () => {
    await admin.setUserDisabled({ user: "alice", disabled: true }, ROOT);
    expect((await decision.check({ credential: aliceKey, action: "read:orders", tenant: "acme" })).reason).toBe(Reason.DISABLED);
    await admin.setUserDisabled({ user: "alice", disabled: false }, ROOT);
    expect((await decision.check({ credential: aliceKey, action: "read:orders", tenant: "acme" })).allowed).toBe(true);
    await admin.revokeApiKey({ id: aliceKeyId }, ROOT);
    const d = await decision.check({ credential: aliceKey, action: "read:orders", tenant: "acme" });
    expect(d.allowed).toBe(false);
    expect(d.reason).toBe(Reason.REVOKED);
  });

  it("serves the same API as Connect JSON over HTTP", async () => {
    const k = await admin.createApiKey({ name: "json", owner: "alice" }, ROOT);
    const res = await fetch(`${v.httpBase}/verdict.v1.DecisionService/Check`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ credential: k.secret, action: "read:orders", tenant: "acme" }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ allowed: true, reason: "REASON_ALLOWED" });
    const adminRes = await fetch(`${v.httpBase}/verdict.v1.AdminService/ListTenants`, {
      method: "POST",
      headers: { "content-type": "application/json", ...ROOT },
      body: "{}",
    });
    expect(adminRes.status).toBe(200);
    expect(((await adminRes.json()) as { tenants: Array<{ id: string }> }).tenants.map((t) => t.id).sort()).toEqual(["acme", "globex"]);
    const denied = await fetch(`${v.httpBase}/verdict.v1.AdminService/ListTenants`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(denied.status).toBe(401);
  });

  it("exports metrics and readiness", async () => {
    const text = await (await fetch(`${v.httpBase}/metrics`)).text();
    expect(text).toMatch(/verdict_decisions_total\{rpc="check",outcome="allow",reason="ALLOWED"\} \d+/);
    expect(text).toMatch(/verdict_decisions_total\{rpc="check",outcome="deny",reason="REVOKED"\} 1/);
    expect(text).toMatch(/verdict_check_duration_seconds_count\{rpc="check"\} \d+/);
    expect(text).toMatch(/verdict_policy_version \d+/);
    expect(text).not.toContain(aliceKey);
    expect((await fetch(`${v.httpBase}/readyz`)).status).toBe(200);
    expect((await fetch(`${v.httpBase}/healthz`)).status).toBe(200);
  });

  it("audits every denial off the hot path, without the credential", async () => {
    const written: string[] = [];
    const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    try {
      const d = await decision.check({ credential: aliceKey, action: "audit:probe", tenant: "acme" });
      await decision.check({ credential: aliceKey, action: "audit:probe", tenant: "acme" });
      // Written by the next flush (every 20 ms here); a busy machine may delay it, so wait for it.
      const mine = await vi.waitFor(
        () => {
          const lines = written.join("").split("\n").filter((l) => l.includes('"msg":"decision"')).map((l) => JSON.parse(l));
          const found = lines.filter((l) => l.decisionId === d.decisionId);
          expect(found).toHaveLength(1);
          return found[0];
        },
        { timeout: 10_000, interval: 20 },
      );
      expect(mine).toMatchObject({ component: "audit", rpc: "check", allowed: false, reason: "REVOKED", action: "audit:probe", tenant: "acme" });
      expect(written.join("")).not.toContain(aliceKey);
    } finally {
      spy.mockRestore();
    }
  });

  it("rejects an oversized request without harm and keeps serving", async () => {
    const err = await grpcError(decision.check({ credential: "x".repeat(200_000), action: "read:orders", tenant: "acme" }));
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    expect((await decision.check({ credential: aliceKey, action: "read:orders", tenant: "acme" })).reason).toBe(Reason.REVOKED);
  });
});
