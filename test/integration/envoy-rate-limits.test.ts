/**
 * Issue 10's Envoy half end to end: route limits from the rules file, `none`, shadow limits,
 * anonymous requests to a limited exempt path counted per client address, the 429 answer (body,
 * Retry-After, X-RateLimit-*), the headers on allowed answers when `includeHeaders` is on, and a
 * reload (the last good limits kept on a bad file). CheckRequests are built as Envoy builds them and
 * sent through an @grpc/grpc-js client whose message definitions come from
 * test/fixtures/envoy-client, against a real replica on Postgres.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { type CheckResponse, type EnvoyClient, type EnvoyRequest, envoyCheck, envoyClient, headerRecord } from "../helpers/envoy-client.js";
import { type TestClient, grpcClient } from "../helpers/grpc.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const ROOT = { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString("base64")}` };

const RULES = `
rules:
  - match: GET /v1/orders/*
    action: read:orders
  - match: GET /v1/chat/*
    action: read:orders
  - match: GET /v1/status
    action: read:orders
  - match: GET /v1/search
    action: read:orders
  - match: GET /v1/feed
    action: read:orders
exempt: [/healthz, /login, /catalog]
rateLimits:
  routes:
    /v1/chat/*: 3/min
    POST /login: 2/min
    GET /catalog: 2/min
    GET /v1/feed: 2/min
    /v1/status: none
    /v1/search: 2/min shadow
`;

describe("envoy ext_authz rate limits against a real server", () => {
  const schema = freshSchema();
  let dir = "";
  let rulesPath = "";
  let v: Awaited<ReturnType<typeof startTestVerdict>>;
  let admin: TestClient<typeof AdminService>;
  let envoy: EnvoyClient;

  const check = (request: EnvoyRequest): Promise<CheckResponse> => envoyCheck(envoy, request);
  const newKey = async (): Promise<string> => (await admin.createApiKey({ name: `k-${randomUUID()}`, owner: "alice" }, ROOT)).secret;
  const withKey = (key: string, path: string, extra: EnvoyRequest = {}): EnvoyRequest => ({ ...extra, path, headers: { "x-api-key": key, "x-tenant-id": "acme" } });
  const metricsText = async (): Promise<string> => (await fetch(`${v.httpBase}/metrics`)).text();

  /** A 429 with every header and field; returns the body. */
  function expectLimited(response: CheckResponse, limit: number, scope: string, window: string) {
    expect(response.status).toMatchObject({ code: 8, message: "RATE_LIMITED" });
    expect(response.http_response).toBe("denied_response");
    const denied = response.denied_response!;
    expect(denied.status.code).toBe("TooManyRequests");
    const headers = headerRecord(denied.headers);
    const body = JSON.parse(denied.body) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(["decision_id", "limit", "message", "reason", "remaining", "retry_after", "scope", "window"]);
    expect(body).toMatchObject({ reason: "RATE_LIMITED", limit, remaining: 0, scope, window });
    const retryAfter = body.retry_after as number;
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(63);
    expect(headers).toEqual({
      "content-type": "application/json",
      "cache-control": "no-store",
      "x-verdict-decision-id": body.decision_id,
      "retry-after": String(retryAfter),
      "x-ratelimit-limit": String(limit),
      "x-ratelimit-remaining": "0",
      "x-ratelimit-reset": String(retryAfter),
    });
    return body;
  }

  function expectAllowed(response: CheckResponse): Record<string, string> {
    expect(response.status.code).toBe(0);
    expect(response.http_response).toBe("ok_response");
    return headerRecord(response.ok_response!.response_headers_to_add);
  }

  async function writeRules(text: string): Promise<void> {
    const next = `${rulesPath}.${randomUUID()}`;
    await writeFile(next, text);
    await rename(next, rulesPath);
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "verdict-envoy-limits-"));
    rulesPath = join(dir, "rules.yaml");
    await writeFile(rulesPath, RULES);
    v = await startTestVerdict(
      {
        DATABASE_URL: TEST_DATABASE_URL,
        VERDICT_EXT_AUTHZ_RULES: rulesPath,
        VERDICT_EXT_AUTHZ_RELOAD_MS: "100",
        VERDICT_RATE_LIMIT_PER_MINUTE: "6",
        VERDICT_RATE_LIMIT_PER_HOUR: "1000",
      },
      schema,
    );
    admin = grpcClient(AdminService, v.grpcAddress);
    envoy = envoyClient(v.grpcAddress);
    await admin.createTenant({ id: "acme" }, ROOT);
    await admin.createUser({ username: "alice", password: "alice-password-1" }, ROOT);
    await admin.grant({ tenant: "acme", statement: "GRANT READ TO alice" }, ROOT);
  });
  afterAll(async () => {
    envoy?.close();
    admin?.close();
    await v?.close();
    await dropSchema(schema);
    await rm(dir, { recursive: true, force: true });
  });

  it("a route limit denies with 429, Retry-After, X-RateLimit-* and a JSON body; the credential's own limit still binds elsewhere", async () => {
    const key = await newKey();
    for (let i = 0; i < 3; i++) {
      // includeHeaders is off: allowed answers carry no rate-limit headers.
      expect(expectAllowed(await check(withKey(key, `/v1/chat/${i}`)))).toEqual({});
    }
    const body = expectLimited(await check(withKey(key, "/v1/chat/9")), 3, "route", "minute");
    expect(body.message).toMatch(/^rate limit exceeded: 3 per minute \(route limit\); retry in \d+ s$/);
    expect(body.message).not.toContain(key);

    // The route's counter is the key's on that route: other routes spend the key's default 6 a minute,
    // of which the three chat requests took three (the denied one took nothing).
    for (let i = 0; i < 3; i++) expectAllowed(await check(withKey(key, "/v1/orders/1")));
    expectLimited(await check(withKey(key, "/v1/orders/1")), 6, "default", "minute");
    // Another key has its own route counter.
    expectAllowed(await check(withKey(await newKey(), "/v1/chat/1")));
  });

  it("none: the route's requests are neither counted nor limited", async () => {
    const key = await newKey();
    for (let i = 0; i < 10; i++) expectAllowed(await check(withKey(key, "/v1/status")));
    for (let i = 0; i < 6; i++) expectAllowed(await check(withKey(key, "/v1/orders/1")));
    expectLimited(await check(withKey(key, "/v1/orders/1")), 6, "default", "minute");
    // Over its own limit, the key still reaches the route with none.
    expectAllowed(await check(withKey(key, "/v1/status")));
  });

  it("shadow: counted and reported in the metrics, never denied", async () => {
    const key = await newKey();
    for (let i = 0; i < 5; i++) expectAllowed(await check(withKey(key, "/v1/search")));
    const text = await metricsText();
    const hits = /verdict_rate_limit_shadow_hits_total\{scope="route",window="minute"\} (\d+)/.exec(text);
    expect(Number(hits?.[1])).toBeGreaterThanOrEqual(3);
    expect(text).toMatch(/verdict_rate_limited_total\{scope="route",window="minute"\} [1-9]/);
  });

  it("an exempt path with a route limit counts requests without a credential per client address", async () => {
    const from = (address: string): EnvoyRequest => ({ method: "POST", path: "/login", source: address, headers: { "x-tenant-id": "acme" } });
    expectAllowed(await check(from("10.0.3.7")));
    expectAllowed(await check(from("10.0.3.7")));
    const body = expectLimited(await check(from("10.0.3.7")), 2, "route", "minute");
    expect(body.message).toMatch(/per client address/);
    expectAllowed(await check(from("10.0.3.8")));
    // GET /login has no limit (the entry is for POST), and a credential changes nothing on an exempt path.
    expectAllowed(await check({ ...from("10.0.3.7"), method: "GET" }));
    expectLimited(await check({ ...from("10.0.3.7"), headers: { "x-api-key": await newKey(), "x-tenant-id": "acme" } }), 2, "route", "minute");
  });

  it("an exempt path's per-address count takes an IPv6 client by its /64", async () => {
    const from = (address: string): EnvoyRequest => ({ method: "POST", path: "/login", source: address, headers: { "x-tenant-id": "acme" } });
    expectAllowed(await check(from("2001:db8:9:1::1")));
    expectAllowed(await check(from("2001:db8:9:1:abcd::2")));
    expectLimited(await check(from("2001:db8:9:1:ffff:ffff:ffff:ffff")), 2, "route", "minute");
    expectAllowed(await check(from("2001:db8:9:2::1")));
    // An IPv4-mapped address is its IPv4 address.
    expectAllowed(await check(from("10.0.9.9")));
    expectAllowed(await check(from("::ffff:10.0.9.9")));
    expectLimited(await check(from("::ffff:a00:909")), 2, "route", "minute");
  });

  it("HEAD counts against a GET route's limit and is checked as GET, with a credential and on an exempt path", async () => {
    const key = await newKey();
    expectAllowed(await check(withKey(key, "/v1/feed", { method: "HEAD" })));
    expectAllowed(await check(withKey(key, "/v1/feed")));
    expectLimited(await check(withKey(key, "/v1/feed", { method: "HEAD" })), 2, "route", "minute");
    expectLimited(await check(withKey(key, "/v1/feed")), 2, "route", "minute");

    const browse = (method: string): EnvoyRequest => ({ method, path: "/catalog", source: "10.0.4.1" });
    expectAllowed(await check(browse("HEAD")));
    expectAllowed(await check(browse("HEAD")));
    expectLimited(await check(browse("GET")), 2, "route", "minute");
    expectLimited(await check(browse("HEAD")), 2, "route", "minute");
  });

  it("reloads route limits and includeHeaders; a bad file keeps the last good limits", async () => {
    await writeRules(RULES.replace("rateLimits:\n", "rateLimits:\n  includeHeaders: true\n").replace("/v1/chat/*: 3/min", "/v1/chat/*: 4/min burst 2"));
    const probe = await newKey();
    await waitFor(async () => "x-ratelimit-limit" in expectAllowed(await check(withKey(probe, "/v1/orders/1"))));

    const key = await newKey();
    // The burst counts in 3-second slots from a fixed origin: start at the beginning of one.
    await waitFor(async () => Date.now() % 3000 < 300, 4000);
    const first = expectAllowed(await check(withKey(key, "/v1/chat/1")));
    // Allowed answers report the minute or hour bound with the fewest units left: the route's 4.
    expect(first).toMatchObject({ "x-ratelimit-limit": "4", "x-ratelimit-remaining": "3" });
    expect(Number(first["x-ratelimit-reset"])).toBeGreaterThan(55);
    expect(expectAllowed(await check(withKey(key, "/v1/chat/1")))["x-ratelimit-remaining"]).toBe("2");
    // The third within the slot is over the burst of 2.
    expectLimited(await check(withKey(key, "/v1/chat/1")), 2, "route", "burst");
    // Outside the route: the key's default limit, one unit spent per request.
    expect(expectAllowed(await check(withKey(key, "/v1/orders/1")))).toMatchObject({ "x-ratelimit-limit": "6", "x-ratelimit-remaining": "3" });

    await writeRules(RULES.replace("/v1/chat/*: 3/min", "/v1/chat/*: 3/sec"));
    await waitFor(async () => /verdict_ext_authz_rules_reloads_total\{outcome="failure"\} [1-9]/.test(await metricsText()));
    const after = await newKey();
    await waitFor(async () => Date.now() % 3000 < 300, 4000);
    expect(expectAllowed(await check(withKey(after, "/v1/chat/1")))).toMatchObject({ "x-ratelimit-limit": "4" });
    expectAllowed(await check(withKey(after, "/v1/chat/1")));
    expectLimited(await check(withKey(after, "/v1/chat/1")), 2, "route", "burst");
  });

  it("caseSensitive: false matches rules and route limits ignoring case (for upstreams that serve /V1/Admin as /v1/admin)", async () => {
    await writeRules(`
caseSensitive: false
rules:
  - match: GET /v1/admin/**
    action: admin:verdict
  - match: GET /v1/**
    action: read:orders
rateLimits:
  routes:
    /v1/chat/*: 2/min
`);
    const probe = await newKey();
    await waitFor(async () => (await check(withKey(probe, "/V1/Orders/1"))).status.code === 0);

    const key = await newKey();
    const admin = (await check(withKey(key, "/V1/Admin/users"))).denied_response!;
    expect(admin.status.code).toBe("Forbidden");
    expect(JSON.parse(admin.body)).toMatchObject({ reason: "FORBIDDEN" });
    expect(admin.body).toContain("admin:verdict");

    expectAllowed(await check(withKey(key, "/v1/chat/1")));
    expectAllowed(await check(withKey(key, "/V1/CHAT/2")));
    expectLimited(await check(withKey(key, "/v1/Chat/3")), 2, "route", "minute");
    expectLimited(await check(withKey(key, "/v1/chat/4")), 2, "route", "minute");
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
