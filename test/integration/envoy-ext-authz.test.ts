/**
 * Issue 5 end to end: CheckRequests built the way Envoy builds them, sent through an @grpc/grpc-js
 * client whose message definitions come from test/fixtures/envoy-client (loaded with
 * @grpc/proto-loader, independent of the server's gen/), against a real replica on Postgres.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ServiceError, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { type CheckResponse, type EnvoyClient, type EnvoyRequest, envoyCheck, envoyClient, envoyRequest, headerRecord } from "../helpers/envoy-client.js";
import { type TestClient, grpcClient } from "../helpers/grpc.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const ROOT = { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString("base64")}` };
/** Decision ids: a per-process hex prefix and a base-36 counter, as DecisionService makes them. */
const DECISION_ID = /^[0-9a-f]{12}-[0-9a-z]+$/;

const RULES = `
rules:
  - match: GET /v1/orders/*
    action: read:orders
  - match: DELETE /v1/orders/*
    action: delete:orders
exempt: [/healthz, /public/**]
tenant:
  from:
    - header: x-tenant-id
    - host: "{tenant}.shop.example"
credentials:
  cookie: verdict_session
limits:
  maxHeaders: 100
`;

describe("envoy ext_authz against a real server", () => {
  const schema = freshSchema();
  let dir = "";
  let rulesPath = "";
  let v: Awaited<ReturnType<typeof startTestVerdict>>;
  let admin: TestClient<typeof AdminService>;
  let envoy: EnvoyClient;
  let aliceKey = "";
  let aliceKeyId = "";
  let revokedKey = "";
  let revokedKeyId = "";
  const logLines: string[] = [];

  const check = (request: EnvoyRequest) => envoyCheck(envoy, request);
  const checkRaw = (request: unknown) =>
    new Promise<CheckResponse>((resolve, reject) => envoy.Check(request, (error, response) => (error ? reject(error) : resolve(response))));
  const withKey = (key: string, extra: EnvoyRequest = {}): EnvoyRequest => ({ ...extra, headers: { "x-api-key": key, "x-tenant-id": "acme", ...extra.headers } });

  /** Every field of a denial, and the decision id the same in header and body. */
  function expectDenial(response: CheckResponse, grpc: number, reason: string, http: string, challenge?: string) {
    expect(response.http_response).toBe("denied_response");
    expect(response.ok_response).toBeUndefined();
    expect(response.status).toEqual({ code: grpc, message: reason, details: [] });
    expect(response.dynamic_metadata).toBeNull();
    const denied = response.denied_response!;
    expect(denied.status.code).toBe(http);
    for (const o of denied.headers) {
      expect(o.append_action).toBe("OVERWRITE_IF_EXISTS_OR_ADD");
      expect(o.keep_empty_value).toBe(true);
      expect(o.append).toBeNull();
    }
    const headers = headerRecord(denied.headers);
    const body = JSON.parse(denied.body) as Record<string, string>;
    expect(Object.keys(body).sort()).toEqual(["decision_id", "message", "reason"]);
    expect(body.reason).toBe(reason);
    expect(body.decision_id).toMatch(DECISION_ID);
    expect(headers).toEqual({
      "content-type": "application/json",
      "cache-control": "no-store",
      "x-verdict-decision-id": body.decision_id,
      ...(challenge === undefined ? {} : { "www-authenticate": challenge }),
    });
    return body;
  }

  /** Every field of an allow; returns the upstream headers. */
  function expectAllow(response: CheckResponse, removed: string[]) {
    expect(response.http_response).toBe("ok_response");
    expect(response.denied_response).toBeUndefined();
    expect(response.status).toEqual({ code: 0, message: "", details: [] });
    const ok = response.ok_response!;
    expect(ok.headers_to_remove).toEqual(removed);
    expect(ok.response_headers_to_add).toEqual([]);
    expect(ok.query_parameters_to_set).toEqual([]);
    expect(ok.query_parameters_to_remove).toEqual([]);
    expect(ok.dynamic_metadata).toBeNull();
    for (const o of ok.headers) {
      expect(o.append_action).toBe("OVERWRITE_IF_EXISTS_OR_ADD");
      expect(o.keep_empty_value).toBe(true);
    }
    const headers = headerRecord(ok.headers);
    expect(headers["x-verdict-decision-id"]).toMatch(DECISION_ID);
    return headers;
  }

  async function writeRules(text: string): Promise<void> {
    const next = `${rulesPath}.${randomUUID()}`;
    await writeFile(next, text);
    await rename(next, rulesPath);
  }

  async function metricsText(): Promise<string> {
    return (await fetch(`${v.httpBase}/metrics`)).text();
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "verdict-envoy-"));
    rulesPath = join(dir, "rules.yaml");
    await writeFile(rulesPath, RULES);
    v = await startTestVerdict({ DATABASE_URL: TEST_DATABASE_URL, VERDICT_EXT_AUTHZ_RULES: rulesPath, VERDICT_EXT_AUTHZ_RELOAD_MS: "100", VERDICT_LOG_LEVEL: "warn" }, schema, logLines);
    admin = grpcClient(AdminService, v.grpcAddress);
    envoy = envoyClient(v.grpcAddress);

    await admin.createTenant({ id: "acme" }, ROOT);
    await admin.createTenant({ id: "globex" }, ROOT);
    await admin.createUser({ username: "alice", password: "alice-password-1" }, ROOT);
    await admin.putRole({ name: "order-reader", permissions: ["read:orders", "read:reports"] }, ROOT);
    await admin.bindRole({ tenant: "acme", user: "alice", role: "order-reader" }, ROOT);
    const key = await admin.createApiKey({ name: "alice-app", owner: "alice" }, ROOT);
    aliceKey = key.secret;
    aliceKeyId = key.apiKey!.id;
    const revoked = await admin.createApiKey({ name: "alice-old", owner: "alice" }, ROOT);
    revokedKey = revoked.secret;
    revokedKeyId = revoked.apiKey!.id;
  });
  afterAll(async () => {
    envoy?.close();
    admin?.close();
    await v?.close();
    await dropSchema(schema);
    await rm(dir, { recursive: true, force: true });
  });

  it("allows an API key with the principal, tenant, roles and decision id upstream and strips x-api-key", async () => {
    const headers = expectAllow(await check(withKey(aliceKey)), ["x-api-key"]);
    expect(Object.keys(headers).sort()).toEqual(["x-verdict-decision-id", "x-verdict-principal", "x-verdict-roles", "x-verdict-tenant"]);
    expect(headers["x-verdict-principal"]).toBe(`key:${aliceKeyId}`);
    expect(headers["x-verdict-tenant"]).toBe("acme");
    expect(headers["x-verdict-roles"]).toBe("order-reader");
  });

  it("gives every answer its own decision id", async () => {
    const a = expectAllow(await check(withKey(aliceKey)), ["x-api-key"]);
    const b = expectAllow(await check(withKey(aliceKey)), ["x-api-key"]);
    expect(a["x-verdict-decision-id"]).not.toBe(b["x-verdict-decision-id"]);
  });

  it("strips the credential it used: authorization for Bearer, only the session cookie from cookie", async () => {
    const bearer = expectAllow(await check({ headers: { authorization: `Bearer ${aliceKey}`, "x-tenant-id": "acme" } }), ["authorization"]);
    expect(bearer["x-verdict-principal"]).toBe(`key:${aliceKeyId}`);
    const cookie = expectAllow(
      await check({ headers: { cookie: `theme=dark; verdict_session=${aliceKey}; lang=en`, "x-tenant-id": "acme" } }),
      [],
    );
    expect(cookie.cookie).toBe("theme=dark; lang=en");
    expect(cookie["x-verdict-principal"]).toBe(`key:${aliceKeyId}`);
    expectAllow(await check({ headers: { cookie: `verdict_session=${aliceKey}`, "x-tenant-id": "acme" } }), ["cookie"]);
  });

  it("sends no credential it recognises upstream, and refuses a doubled session cookie (issue 8 item 8)", async () => {
    const doubled = expectDenial(
      await check({ headers: { cookie: `verdict_session=${aliceKey}; verdict_session=${revokedKey}`, "x-tenant-id": "acme" } }),
      3,
      "INVALID_REQUEST",
      "BadRequest",
    );
    expect(doubled.message).toBe("the verdict_session cookie is sent more than once");
    const headers = expectAllow(
      await check({ headers: { authorization: `Bearer ${aliceKey}`, "x-api-key": revokedKey, cookie: `verdict_session=${revokedKey}; theme=dark`, "x-tenant-id": "acme" } }),
      ["authorization", "x-api-key"],
    );
    expect(headers.cookie).toBe("theme=dark");
    // Sibling: a doubled header is joined by Envoy with ',' and is no credential at all.
    const doubledHeaders: Record<string, string>[] = [{ "x-api-key": `${aliceKey},${aliceKey}` }, { authorization: `Bearer ${aliceKey},Bearer ${aliceKey}` }];
    for (const doubledHeader of doubledHeaders) {
      const response = await check({ headers: { ...doubledHeader, "x-tenant-id": "acme" } });
      expect(response.http_response).toBe("denied_response");
      expect(response.status.code).toBe(16);
    }
  });

  it("overwrites x-verdict-* headers a client sent itself", async () => {
    const headers = expectAllow(
      await check(withKey(aliceKey, { headers: { "x-verdict-principal": "root", "x-verdict-roles": "SUPER" } })),
      ["x-api-key"],
    );
    expect(headers["x-verdict-principal"]).toBe(`key:${aliceKeyId}`);
    expect(headers["x-verdict-roles"]).toBe("order-reader");
  });

  it("takes the tenant from the host pattern (port dropped) when there is no x-tenant-id", async () => {
    const headers = expectAllow(await check({ authority: "acme.shop.example:8443", headers: { "x-api-key": aliceKey } }), ["x-api-key"]);
    expect(headers["x-verdict-tenant"]).toBe("acme");
    const other = await check({ authority: "globex.shop.example", headers: { "x-api-key": aliceKey } });
    expectDenial(other, 7, "WRONG_TENANT", "Forbidden");
  });

  it("uses the route's context_extensions: verdict.action and verdict.tenant", async () => {
    // No rule matches POST /v1/reports/run; the route's action makes it a read:reports check.
    const before = await check(withKey(aliceKey, { method: "POST", path: "/v1/reports/run" }));
    expectDenial(before, 7, "FORBIDDEN", "Forbidden");
    const routed = await check(withKey(aliceKey, { method: "POST", path: "/v1/reports/run", contextExtensions: { "verdict.action": "read:reports" } }));
    expectAllow(routed, ["x-api-key"]);
    const tenantRouted = await check(withKey(aliceKey, { contextExtensions: { "verdict.tenant": "globex" } }));
    expectDenial(tenantRouted, 7, "WRONG_TENANT", "Forbidden");
  });

  it("answers 401 with a challenge when there is no credential, or an unusable one", async () => {
    const none = expectDenial(await check({ headers: { "x-tenant-id": "acme" } }), 16, "UNAUTHENTICATED", "Unauthorized", 'Bearer realm="verdict"');
    expect(none.message).toBe("no credential in the request");
    const basic = await check({ headers: { authorization: "Basic YWxpY2U6cHc=", "x-tenant-id": "acme" } });
    expectDenial(basic, 16, "UNAUTHENTICATED", "Unauthorized", 'Bearer realm="verdict"');
    const garbage = await check(withKey("vk_notakey"));
    expectDenial(garbage, 16, "MALFORMED_CREDENTIAL", "Unauthorized", 'Bearer realm="verdict", error="invalid_token"');
    const typo = aliceKey.slice(0, -1) + (aliceKey.endsWith("A") ? "B" : "A");
    const body = expectDenial(await check(withKey(typo)), 16, "MALFORMED_CREDENTIAL", "Unauthorized", 'Bearer realm="verdict", error="invalid_token"');
    expect(body.message).not.toContain(aliceKey.slice(16));
  });

  it("answers 403 for a forbidden action and for no matching rule", async () => {
    const body = expectDenial(await check(withKey(aliceKey, { method: "DELETE", path: "/v1/orders/42" })), 7, "FORBIDDEN", "Forbidden");
    expect(body.message).toContain("delete:orders");
    const unmatched = expectDenial(await check(withKey(aliceKey, { path: "/v1/unknown" })), 7, "FORBIDDEN", "Forbidden");
    expect(unmatched.message).toBe("no route rule matches this request");
  });

  it("answers 403 for a tenant the principal does not belong to, and for an unknown tenant", async () => {
    expectDenial(await check(withKey(aliceKey, { headers: { "x-tenant-id": "globex" } })), 7, "WRONG_TENANT", "Forbidden");
    expectDenial(await check(withKey(aliceKey, { headers: { "x-tenant-id": "initech" } })), 7, "UNKNOWN_TENANT", "Forbidden");
  });

  it("allows exempt paths without a credential and strips spoofed principal headers", async () => {
    for (const path of ["/healthz", "/public/logo.png?v=3"]) {
      const response = await check({ path, headers: { "x-verdict-principal": "root" } });
      const headers = expectAllow(response, ["x-verdict-principal", "x-verdict-tenant", "x-verdict-roles"]);
      expect(Object.keys(headers)).toEqual(["x-verdict-decision-id"]);
    }
  });

  it("denies an expired key with 401 EXPIRED (allowed before it expired)", async () => {
    // Created here, not with the fixtures: the tests before this one may take longer than its life
    // on a busy machine. Three seconds are enough for the create and the first request.
    const expiresAt = Date.now() + 3000;
    const expiringKey = (await admin.createApiKey({ name: "alice-short", owner: "alice", expireTimeUnixMs: BigInt(expiresAt) }, ROOT)).secret;
    expectAllow(await check(withKey(expiringKey)), ["x-api-key"]);
    await new Promise((r) => setTimeout(r, Math.max(0, expiresAt - Date.now() + 50)));
    const body = expectDenial(await check(withKey(expiringKey)), 16, "EXPIRED", "Unauthorized", 'Bearer realm="verdict", error="invalid_token"');
    expect(body.message).toContain("expired");
  });

  it("denies a revoked key with 401 REVOKED on the next request after the revocation", async () => {
    expectAllow(await check(withKey(revokedKey)), ["x-api-key"]);
    await admin.revokeApiKey({ id: revokedKeyId }, ROOT);
    expectDenial(await check(withKey(revokedKey)), 16, "REVOKED", "Unauthorized", 'Bearer realm="verdict", error="invalid_token"');
  });

  it("rejects malformed header values cleanly", async () => {
    const cases: Array<[EnvoyRequest, number, string, string, string?]> = [
      [{ headers: { authorization: "Bearer    ", "x-tenant-id": "acme" } }, 3, "INVALID_REQUEST", "BadRequest", 'Bearer realm="verdict", error="invalid_request"'],
      [withKey(aliceKey, { headers: { "x-tenant-id": "ACME; DROP TABLE" } }), 3, "INVALID_REQUEST", "BadRequest"],
      [withKey(aliceKey, { headers: { "x-tenant-id": "" }, authority: "10.0.0.1" }), 3, "INVALID_REQUEST", "BadRequest"],
      [withKey(aliceKey, { path: "/v1/orders/../admin" }), 3, "INVALID_REQUEST", "BadRequest"],
      [withKey(aliceKey, { path: "/v1/orders/%2e%2e/admin" }), 3, "INVALID_REQUEST", "BadRequest"],
      [withKey(aliceKey, { path: "orders" }), 3, "INVALID_REQUEST", "BadRequest"],
      [withKey("vk_\u0000\u00e9\ud83d\ude00"), 16, "MALFORMED_CREDENTIAL", "Unauthorized", 'Bearer realm="verdict", error="invalid_token"'],
      [withKey("x".repeat(10_000)), 16, "MALFORMED_CREDENTIAL", "Unauthorized", 'Bearer realm="verdict", error="invalid_token"'],
      [withKey(aliceKey, { contextExtensions: { "verdict.action": "not an action" } }), 3, "INVALID_REQUEST", "BadRequest"],
    ];
    for (const [request, grpc, reason, http, challenge] of cases) {
      expectDenial(await check(request), grpc, reason, http, challenge);
    }
    const empty = await checkRaw({});
    expectDenial(empty, 3, "INVALID_REQUEST", "BadRequest");
  });

  it("answers a malformed verdict.action on the route 400 with a clear message and logs it for the operator, never as a failure", async () => {
    const before = logLines.length;
    const body = expectDenial(await check(withKey(aliceKey, { contextExtensions: { "verdict.action": "read orders" } })), 3, "INVALID_REQUEST", "BadRequest");
    expect(body.message).toBe("the route's verdict.action context extension is not a valid action (Envoy's route configuration)");
    const lines = logLines.slice(before).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([
      expect.objectContaining({
        level: "warn",
        component: "ext_authz",
        msg: "ext_authz denied a request: Envoy's route configuration is invalid",
        decisionId: body.decision_id,
        problem: 'context extension verdict.action "read orders" is not a valid action',
      }),
    ]);
    expect(await metricsText()).not.toMatch(/verdict_decisions_total\{[^}]*reason="INTERNAL_ERROR"[^}]*\} [1-9]/);
  });

  it("refuses paths an upstream may read differently, and method overrides (issue 8 item 2)", async () => {
    const exemptBypasses: Array<[string, string]> = [
      ["GET", "/public/..%2fv1%2fadmin%2fusers"],
      ["DELETE", "/public/..%2f..%2fv1%2forders%2f42"],
      ["GET", "/public/%2e%2e%2fv1/admin/users"],
      ["GET", "/public/..%252fv1%252fadmin"],
      ["GET", "/public/..%c0%afv1%c0%afadmin"],
      ["GET", "/public/..;/v1/admin/users"],
      ["GET", "/public/..\\v1\\admin"],
      ["GET", "/public/x%00/../../v1/admin"],
    ];
    for (const [method, path] of exemptBypasses) {
      const body = expectDenial(await check({ method, path }), 3, "INVALID_REQUEST", "BadRequest");
      expect(body.message, `${method} ${path}`).toMatch(/^the path/);
    }
    const mappingBypasses = ["/v1/orders/..%2fadmin", "/v1/orders/..%2F..%2Fadmin", "/v1/orders/..\\admin", "/v1/orders/..;/admin"];
    for (const path of mappingBypasses) expectDenial(await check(withKey(aliceKey, { path })), 3, "INVALID_REQUEST", "BadRequest");
    const override = expectDenial(await check(withKey(aliceKey, { headers: { "x-http-method-override": "DELETE" } })), 3, "INVALID_REQUEST", "BadRequest");
    expect(override.message).toContain("method override");
    expectAllow(await check({ path: "/public/docs/index.html" }), ["x-verdict-principal", "x-verdict-tenant", "x-verdict-roles"]);
    expectAllow(await check(withKey(aliceKey, { path: "/v1/orders/4%32" })), ["x-api-key"]);
  });

  it("rejects huge header maps cleanly and keeps serving", async () => {
    const many = Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`x-extra-${i}`, "v"]));
    const tooMany = expectDenial(await check(withKey(aliceKey, { headers: many })), 3, "INVALID_REQUEST", "BadRequest");
    expect(tooMany.message).toBe("more than 100 headers");
    const long = expectDenial(await check(withKey(aliceKey, { headers: { "x-long": "a".repeat(20_000) } })), 3, "INVALID_REQUEST", "BadRequest");
    expect(long.message).toBe("a header value is longer than 16384 bytes");
    // Over VERDICT_MAX_REQUEST_BYTES (64 KiB by default) the transport refuses the message itself.
    const huge = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`x-huge-${i}`, "h".repeat(100)]));
    const error = await check(withKey(aliceKey, { headers: huge })).then(
      () => undefined,
      (e: ServiceError) => e,
    );
    expect(error?.code).toBe(status.RESOURCE_EXHAUSTED);
    expectAllow(await check(withKey(aliceKey)), ["x-api-key"]);
  });

  it("counts ext_authz decisions and latency in /metrics", async () => {
    const text = await metricsText();
    expect(text).toMatch(/verdict_decisions_total\{rpc="ext_authz",outcome="allow",reason="ALLOWED"\} [1-9]/);
    expect(text).toMatch(/verdict_decisions_total\{rpc="ext_authz",outcome="deny",reason="FORBIDDEN"\} [1-9]/);
    expect(text).toMatch(/verdict_check_duration_seconds_count\{rpc="ext_authz"\} [1-9]/);
  });

  it("reloads the rules file without a restart and keeps the last good rules when a new file is invalid", async () => {
    const invoice = withKey(aliceKey, { path: "/v1/invoices/7" });
    expectDenial(await check(invoice), 7, "FORBIDDEN", "Forbidden");
    await writeRules(RULES.replace("rules:\n", "rules:\n  - match: GET /v1/invoices/*\n    action: read:orders\n"));
    await waitFor(async () => (await check(invoice)).http_response === "ok_response");
    expectAllow(await check(invoice), ["x-api-key"]);

    await writeRules("rules:\n  - match: GET /v1/ord*\n    action: read:orders\n");
    await waitFor(async () => /verdict_ext_authz_rules_reloads_total\{outcome="failure"\} [1-9]/.test(await metricsText()));
    expectAllow(await check(invoice), ["x-api-key"]);
    expectDenial(await check(withKey(aliceKey, { method: "DELETE", path: "/v1/orders/1" })), 7, "FORBIDDEN", "Forbidden");
    expect(await metricsText()).toMatch(/verdict_ext_authz_rules_reloads_total\{outcome="success"\} [1-9]/);
  });
});

describe("envoy ext_authz with the built-in rules and with a bad rules file", () => {
  const schema = freshSchema();
  afterAll(async () => {
    await dropSchema(schema);
  });

  it("without VERDICT_EXT_AUTHZ_RULES, derives the action from the method and the path", async () => {
    const v = await startTestVerdict({ DATABASE_URL: TEST_DATABASE_URL }, schema);
    const admin = grpcClient(AdminService, v.grpcAddress);
    const envoy = envoyClient(v.grpcAddress);
    try {
      await admin.createTenant({ id: "acme" }, ROOT);
      await admin.createUser({ username: "bob", password: "bob-password-12" }, ROOT);
      await admin.grant({ tenant: "acme", statement: "GRANT READ TO bob" }, ROOT);
      const key = (await admin.createApiKey({ name: "bob-app", owner: "bob" }, ROOT)).secret;
      const call = (method: string, path: string) =>
        new Promise<CheckResponse>((resolve, reject) =>
          envoy.Check(envoyRequest({ method, path, headers: { "x-api-key": key, "x-tenant-id": "acme" } }), (e, r) => (e ? reject(e) : resolve(r))),
        );
      expect((await call("GET", "/api/v1/orders/42")).http_response).toBe("ok_response");
      const denied = await call("DELETE", "/api/v1/orders/42");
      expect(denied.status.code).toBe(7);
      expect(JSON.parse(denied.denied_response!.body).message).toContain("delete:orders");
      expect((await call("TRACE", "/v1/orders")).denied_response?.status.code).toBe("Forbidden");
    } finally {
      envoy.close();
      admin.close();
      await v.close();
    }
  });

  it("with VERDICT_EXT_AUTHZ_AMBIGUOUS_PATHS=normalize, checks the path an upstream would serve", async () => {
    const v = await startTestVerdict({ DATABASE_URL: TEST_DATABASE_URL, VERDICT_EXT_AUTHZ_AMBIGUOUS_PATHS: "normalize" }, schema);
    const admin = grpcClient(AdminService, v.grpcAddress);
    const envoy = envoyClient(v.grpcAddress);
    try {
      await admin.createTenant({ id: "normco" }, ROOT);
      await admin.createUser({ username: "carol", password: "carol-password-1" }, ROOT);
      await admin.grant({ tenant: "normco", statement: "GRANT READ TO carol" }, ROOT);
      const key = (await admin.createApiKey({ name: "carol-app", owner: "carol" }, ROOT)).secret;
      const call = (method: string, path: string) =>
        new Promise<CheckResponse>((resolve, reject) =>
          envoy.Check(envoyRequest({ method, path, headers: { "x-api-key": key, "x-tenant-id": "normco" } }), (e, r) => (e ? reject(e) : resolve(r))),
        );
      expect((await call("GET", "/v1//orders/./42")).http_response).toBe("ok_response");
      const denied = await call("DELETE", "/healthz/..%2f..%2fv1%2forders%2f42");
      expect(denied.status.code).toBe(7);
      expect(JSON.parse(denied.denied_response!.body).message).toContain("delete:orders");
      expect((await call("GET", "/v1/orders/%252e%252e")).denied_response?.status.code).toBe("BadRequest");
    } finally {
      envoy.close();
      admin.close();
      await v.close();
    }
  });

  it("refuses to start on an invalid rules file, naming the file and the entry", async () => {
    const dir = await mkdtemp(join(tmpdir(), "verdict-envoy-bad-"));
    const path = join(dir, "rules.yaml");
    await writeFile(path, "rules:\n  - match: GET /v1/ord*\n    action: read:orders\n");
    try {
      await expect(startTestVerdict({ DATABASE_URL: TEST_DATABASE_URL, VERDICT_EXT_AUTHZ_RULES: path }, schema)).rejects.toThrow(
        `${path}: rules[0] ("GET /v1/ord*"): segment "ord*" mixes '*' with other characters`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}
