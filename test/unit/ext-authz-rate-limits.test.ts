/**
 * The ext_authz adapter and rate limits: which route it hands the decider, the 429 and the
 * X-RateLimit-* headers it builds from the decision's standing, and the per-address counting of
 * exempt paths with a route limit (a real RateLimiter on a fixed clock). The wire codec keeps the
 * client address only when the rules have route limits.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { CheckRequestSchema, type CheckResponse } from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import type { Decider } from "../../src/api/envoy/decider.js";
import { createExtAuthzHandler, type ExtAuthzOutcome } from "../../src/api/envoy/ext-authz.js";
import { clientAddress } from "../../src/api/envoy/request.js";
import { parseRules } from "../../src/api/envoy/rules/parse.js";
import { decodeCheckRequest, selectHeaders } from "../../src/api/envoy/wire.js";
import type { Decision, PrincipalView } from "../../src/core/decision.js";
import type { RateAnswer } from "../../src/core/rate-limit.js";
import { RateLimiter, type RouteLimit } from "../../src/engine/rate-limiter.js";
import { createDecisionAudit } from "../../src/observability/audit.js";
import { denial } from "../helpers/ext-authz-denial.js";

const PRINCIPAL: PrincipalView = { kind: "api_key", userId: "u1", username: "alice", keyId: "k1", tenant: "acme", roles: ["READ"] };
const NOW = Date.UTC(2026, 5, 1, 12, 0, 0);

function rules(extra = "") {
  return parseRules(`
rules:
  - match: GET /v1/orders/*
    action: read:orders
exempt: [/healthz, /login]
rateLimits:${extra}
  routes:
    /v1/orders/1: 10/min
    POST /login: 2/min
    /healthz: none
`);
}

function request(path: string, options: { method?: string; source?: string; headers?: Record<string, string> } = {}) {
  const method = options.method ?? "GET";
  return create(CheckRequestSchema, {
    attributes: {
      source: options.source === undefined ? undefined : { address: { address: { case: "socketAddress", value: { address: options.source } } } },
      request: { http: { method, path, host: "api.example.com", headers: { ":method": method, ":path": path, "x-tenant-id": "acme", ...options.headers } } },
    },
  });
}

/** A decider that answers `decision` (with `rate`) and records the route it was given. */
function decider(rate: RateAnswer | undefined, allowed = true, limiter?: RateLimiter): Decider & { routes: (RouteLimit | undefined)[] } {
  const routes: (RouteLimit | undefined)[] = [];
  return {
    routes,
    check(_credential, _action, _tenant, _cost, route): Decision {
      routes.push(route);
      if (allowed) return { allowed: true, reason: "ALLOWED", message: "", principal: PRINCIPAL, version: 1, rate };
      return { allowed: false, reason: "RATE_LIMITED", message: "rate limit exceeded: 10 per minute (route limit); retry in 13 s", principal: PRINCIPAL, version: 1, rate };
    },
    limitAnonymous: limiter ? (subject, route, cost) => limiter.takeAnonymous(subject, route, cost, NOW) : undefined,
  };
}

function responseHeaders(response: CheckResponse): Record<string, string> {
  if (response.httpResponse.case !== "okResponse") throw new Error(`expected ok_response, got ${response.httpResponse.case}`);
  return Object.fromEntries(response.httpResponse.value.responseHeadersToAdd.map((h) => [h.header!.key, h.header!.value]));
}

const key = { "x-api-key": "vk_alice" };
const standing = (over: Partial<RateAnswer> = {}): RateAnswer => ({
  allowed: true,
  bound: { limit: 10, window: "minute", scope: "route" },
  remaining: 7,
  resetMs: 59_001,
  ...over,
});

const limiters: RateLimiter[] = [];
afterEach(() => {
  for (const l of limiters.splice(0)) l.close();
});

function newLimiter(): RateLimiter {
  const limiter = new RateLimiter({ defaults: { perMinute: 0, perHour: 0, burst: 0, shadow: false }, maxTracked: 1000 });
  limiters.push(limiter);
  return limiter;
}

describe("ext_authz rate limits: the route handed to the decider", () => {
  it("hands over the matched route's entry, and nothing for a route without one", async () => {
    const d = decider(undefined);
    const check = createExtAuthzHandler({ decider: d, rules: rules() });
    await check(request("/v1/orders/1", { headers: key }));
    await check(request("/v1/orders/2", { headers: key }));
    expect(d.routes[0]).toMatchObject({ id: "/v1/orders/1", off: false, limits: { minute: { limit: 10, scope: "route" } } });
    expect(d.routes[1]).toBeUndefined();
  });
});

describe("ext_authz rate limits: answers", () => {
  it("a RATE_LIMITED decision is a 429 with Retry-After, X-RateLimit-* and the limit in the body", async () => {
    const outcomes: ExtAuthzOutcome[] = [];
    const rate = standing({ allowed: false, remaining: 0, resetMs: 12_300 });
    const check = createExtAuthzHandler({ decider: decider(rate, false), rules: rules(), newDecisionId: () => "d-1", onOutcome: (o) => outcomes.push(o) });
    const d = denial(await check(request("/v1/orders/1", { headers: key })));
    expect(d).toMatchObject({ grpc: 8, http: 429 });
    expect(d.headers).toEqual({
      "content-type": "application/json",
      "cache-control": "no-store",
      "x-verdict-decision-id": "d-1",
      "retry-after": "13",
      "x-ratelimit-limit": "10",
      "x-ratelimit-remaining": "0",
      "x-ratelimit-reset": "13",
    });
    expect(d.body).toEqual({
      reason: "RATE_LIMITED",
      message: "rate limit exceeded: 10 per minute (route limit); retry in 13 s",
      decision_id: "d-1",
      limit: 10,
      remaining: 0,
      window: "minute",
      scope: "route",
      retry_after: 13,
    });
    expect(outcomes[0]).toMatchObject({ reason: "RATE_LIMITED", httpStatus: 429, rate });
  });

  it("Retry-After is at least 1 even when the wait rounds to 0", async () => {
    const check = createExtAuthzHandler({ decider: decider(standing({ allowed: false, remaining: 0, resetMs: 0 }), false), rules: rules() });
    expect(denial(await check(request("/v1/orders/1", { headers: key }))).headers["retry-after"]).toBe("1");
  });

  it("allowed answers carry X-RateLimit-* to the client only with includeHeaders", async () => {
    const on = createExtAuthzHandler({ decider: decider(standing()), rules: rules("\n  includeHeaders: true") });
    expect(responseHeaders(await on(request("/v1/orders/1", { headers: key })))).toEqual({ "x-ratelimit-limit": "10", "x-ratelimit-remaining": "7", "x-ratelimit-reset": "60" });
    const off = createExtAuthzHandler({ decider: decider(standing()), rules: rules() });
    expect(responseHeaders(await off(request("/v1/orders/1", { headers: key })))).toEqual({});
    // No standing (nothing limited the credential): no headers either.
    const unlimited = createExtAuthzHandler({ decider: decider(undefined), rules: rules("\n  includeHeaders: true") });
    expect(responseHeaders(await unlimited(request("/v1/orders/1", { headers: key })))).toEqual({});
  });

  it("a shadow hit is allowed and reported in the outcome, and the audit records it", async () => {
    const outcomes: ExtAuthzOutcome[] = [];
    const shadow = { limit: 3, window: "minute" as const, scope: "route" as const };
    const check = createExtAuthzHandler({ decider: decider(standing({ shadow })), rules: rules(), onOutcome: (o) => outcomes.push(o) });
    expect((await check(request("/v1/orders/1", { headers: key }))).status!.code).toBe(0);
    expect(outcomes[0]).toMatchObject({ allowed: true, rate: { shadow } });

    const written: string[] = [];
    const audit = createDecisionAudit({ allowSampleRate: 0, maxPending: 10, flushIntervalMs: 60_000, write: (l) => written.push(l), onDropped: () => undefined });
    audit.record("ext_authz", outcomes[0], "read:orders", "acme", "d-9");
    audit.record("ext_authz", { ...outcomes[0], rate: standing() }, "read:orders", "acme", "d-10");
    audit.close();
    const lines = written.join("").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ decisionId: "d-9", allowed: true, rateLimit: { scope: "route", window: "minute", limit: 3, shadow: true } });
  });
});

describe("ext_authz rate limits: exempt paths, per client address", () => {
  it("counts requests to a limited exempt path per client address, with or without a credential", async () => {
    const outcomes: ExtAuthzOutcome[] = [];
    const check = createExtAuthzHandler({ decider: decider(undefined, true, newLimiter()), rules: rules("\n  includeHeaders: true"), onOutcome: (o) => outcomes.push(o) });
    const login = (source: string | undefined, headers: Record<string, string> = {}) => check(request("/login", { method: "POST", source, headers }));
    expect(responseHeaders(await login("10.0.0.1"))).toEqual({ "x-ratelimit-limit": "2", "x-ratelimit-remaining": "1", "x-ratelimit-reset": expect.stringMatching(/^6[0-3]$/) as unknown });
    await login("10.0.0.1", key);
    const d = denial(await login("10.0.0.1"));
    expect(d).toMatchObject({ http: 429, body: { reason: "RATE_LIMITED", limit: 2, scope: "route", window: "minute" } });
    expect(d.body.message).toMatch(/^rate limit exceeded: 2 per minute \(route limit, per client address\); retry in \d+ s$/);
    expect(outcomes[2]).toMatchObject({ reason: "RATE_LIMITED", principal: undefined });
    expect((await login("10.0.0.2")).status!.code).toBe(0);
    // Requests whose address Envoy did not send share one counter.
    await login(undefined);
    await login(undefined);
    expect(denial(await login(undefined)).http).toBe(429);
    // Other methods, and `none`, are neither counted nor limited.
    for (let i = 0; i < 5; i++) {
      expect((await check(request("/login", { source: "10.0.0.1" }))).status!.code).toBe(0);
      expect((await check(request("/healthz", { source: "10.0.0.1" }))).status!.code).toBe(0);
    }
  });

  it("counts an IPv6 client by its /64 (ipv6LimitPrefix, default 64) and an IPv4-mapped one as IPv4", async () => {
    const per64 = createExtAuthzHandler({ decider: decider(undefined, true, newLimiter()), rules: rules() });
    const login64 = (source: string) => per64(request("/login", { method: "POST", source }));
    expect((await login64("2001:db8:1:2::1")).status!.code).toBe(0);
    expect((await login64("2001:DB8:1:2:ffff::2")).status!.code).toBe(0);
    expect(denial(await login64("2001:db8:1:2:3:4:5:6")).http).toBe(429);
    expect((await login64("2001:db8:1:3::1")).status!.code).toBe(0);
    expect((await login64("::ffff:10.0.0.9")).status!.code).toBe(0);
    expect((await login64("10.0.0.9")).status!.code).toBe(0);
    expect(denial(await login64("::ffff:a00:9")).http).toBe(429);

    const per48 = createExtAuthzHandler({ decider: decider(undefined, true, newLimiter()), rules: rules(), ipv6LimitPrefix: 48 });
    await per48(request("/login", { method: "POST", source: "2001:db8:1:2::1" }));
    await per48(request("/login", { method: "POST", source: "2001:db8:1:3::1" }));
    expect(denial(await per48(request("/login", { method: "POST", source: "2001:db8:1:4::1" }))).http).toBe(429);

    const alone = createExtAuthzHandler({ decider: decider(undefined, true, newLimiter()), rules: rules(), ipv6LimitPrefix: 128 });
    for (let i = 1; i <= 4; i++) expect((await alone(request("/login", { method: "POST", source: `2001:db8:1:2::${i}` }))).status!.code).toBe(0);
    expect(() => createExtAuthzHandler({ decider: decider(undefined), rules: rules(), ipv6LimitPrefix: 129 })).toThrow(RangeError);
  });

  it("a trailing '/' (which most upstreams serve as the same route) does not escape a route's limit", async () => {
    const trailing = parseRules(`
rules:
  - match: GET /v1/**
    action: read:orders
exempt: [/public/**]
rateLimits:
  routes:
    /v1/orders/1: 10/min
    POST /public/login: 2/min
`);
    const d = decider(undefined);
    await createExtAuthzHandler({ decider: d, rules: trailing })(request("/v1/orders/1/?page=2", { headers: key }));
    expect(d.routes[0]).toMatchObject({ id: "/v1/orders/1" });
    const check = createExtAuthzHandler({ decider: decider(undefined, true, newLimiter()), rules: trailing });
    const login = (path: string) => check(request(path, { method: "POST", source: "10.0.0.1" }));
    await login("/public/login");
    await login("/public/login/");
    expect(denial(await login("/public/login/")).http).toBe(429);
  });

  it("a lower-case method (which some upstreams serve as the upper-case one) does not escape a route's limit", async () => {
    const check = createExtAuthzHandler({ decider: decider(undefined, true, newLimiter()), rules: rules() });
    const login = (method: string) => check(request("/login", { method, source: "10.0.0.1" }));
    await login("POST");
    await login("post");
    expect(denial(await login("Post")).http).toBe(429);
  });

  it("HEAD counts against a GET route's limit (HTTP serves HEAD as GET), on exempt paths and with a credential", async () => {
    const getOnly = parseRules(`
rules:
  - match: GET /v1/feed
    action: read:feed
exempt: [/catalog]
rateLimits:
  routes:
    GET /catalog: 2/min
    GET /v1/feed: 3/min
`);
    const check = createExtAuthzHandler({ decider: decider(undefined, true, newLimiter()), rules: getOnly });
    const browse = (method: string) => check(request("/catalog", { method, source: "10.0.0.1" }));
    expect((await browse("HEAD")).status!.code).toBe(0);
    expect((await browse("GET")).status!.code).toBe(0);
    expect(denial(await browse("HEAD")).http).toBe(429);
    expect(denial(await browse("GET")).http).toBe(429);

    const d = decider(undefined);
    await createExtAuthzHandler({ decider: d, rules: getOnly })(request("/v1/feed", { method: "HEAD", headers: key }));
    expect(d.routes).toEqual([expect.objectContaining({ id: "GET /v1/feed" })]);
  });

  it("a decider without limitAnonymous limits nothing there", async () => {
    const check = createExtAuthzHandler({ decider: decider(undefined), rules: rules() });
    for (let i = 0; i < 4; i++) expect((await check(request("/login", { method: "POST", source: "10.0.0.1" }))).status!.code).toBe(0);
  });
});

describe("decodeCheckRequest: the client address", () => {
  const bytes = toBinary(CheckRequestSchema, request("/login", { method: "POST", source: "2001:db8::7" }));
  it("is kept when the selection asks for it", () => {
    expect(clientAddress(decodeCheckRequest(bytes, selectHeaders([":path"], true)))).toBe("2001:db8::7");
    expect(clientAddress(request("/login", { source: "10.1.1.1" }))).toBe("10.1.1.1");
  });
  it("is skipped otherwise", () => {
    expect(clientAddress(decodeCheckRequest(bytes, selectHeaders([":path"])))).toBe("");
    expect(decodeCheckRequest(bytes, selectHeaders([":path"])).attributes?.source).toBeUndefined();
  });
});
