import { create, fromBinary, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { HeaderValueOption_HeaderAppendAction, HeaderValueOptionSchema, HeaderValueSchema } from "../../gen/envoy/config/core/v3/base_pb.js";
import { AttributeContext_HttpRequestSchema, AttributeContextSchema } from "../../gen/envoy/service/auth/v3/attribute_context_pb.js";
import {
  CheckRequestSchema,
  CheckResponseSchema,
  DeniedHttpResponseSchema,
  OkHttpResponseSchema,
  type CheckRequest,
  type CheckResponse,
} from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import { StatusCode } from "../../gen/envoy/type/v3/http_status_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { deny, type Decision, type PrincipalView, type ReasonCode } from "../../src/core/decision.js";
import type { Decider } from "../../src/api/envoy/decider.js";
import { createExtAuthzHandler, type ExtAuthzOptions, type ExtAuthzOutcome } from "../../src/api/envoy/ext-authz.js";
import type { CompiledRules } from "../../src/api/envoy/rules/model.js";
import { headerNamesRead } from "../../src/api/envoy/request.js";
import { denial } from "../helpers/ext-authz-denial.js";
import { builtInRules, parseRules } from "../../src/api/envoy/rules/parse.js";

// ---- a fake decider built from tables -------------------------------------------------------

interface FakeIdentity {
  readonly view: Omit<PrincipalView, "tenant">;
  readonly tenants: readonly string[];
  readonly permissions: readonly string[];
}

const IDENTITIES: Record<string, FakeIdentity> = {
  vk_alice: {
    view: { kind: "user", userId: "u-alice", username: "alice", keyId: "", roles: ["READ", "WRITE"] },
    tenants: ["acme", "globex"],
    permissions: ["read:orders", "delete:orders", "read:users"],
  },
  vk_robot: {
    view: { kind: "api_key", userId: "u-bob", username: "bob", keyId: "k123", roles: [] },
    tenants: ["acme"],
    permissions: ["read:orders"],
  },
};

/** Credentials whose check always ends in one reason. */
const FIXED_DENIALS: Record<string, Exclude<ReasonCode, "ALLOWED">> = {
  vk_expired: "EXPIRED",
  vk_revoked: "REVOKED",
  vk_ratelimited: "RATE_LIMITED",
  vk_stale: "STALE",
  vk_internal: "INTERNAL_ERROR",
  vk_malformed: "MALFORMED_CREDENTIAL",
  vk_badsig: "TOKEN_BAD_SIGNATURE",
  vk_unknowntenant: "UNKNOWN_TENANT",
  vk_disabled: "DISABLED",
};

function jwt(payload: object): string {
  const part = (o: object): string => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${part({ alg: "ES256", typ: "JWT" })}.${part(payload)}.c2lnbmF0dXJl`;
}
const ALICE_JWT = jwt({ sub: "u-alice", tid: "globex" });
IDENTITIES[ALICE_JWT] = IDENTITIES.vk_alice;

function createFakeDecider(): Decider & { calls: [string, string, string][] } {
  const calls: [string, string, string][] = [];
  return {
    calls,
    check(credential, action, tenant): Decision {
      calls.push([credential, action, tenant]);
      const fixed = FIXED_DENIALS[credential];
      if (fixed !== undefined) return deny(fixed, `fake ${fixed.toLowerCase()}`, 7);
      const identity = IDENTITIES[credential];
      if (identity === undefined) return deny("UNKNOWN_CREDENTIAL", "unknown credential", 7);
      const principal = { ...identity.view, tenant };
      if (!identity.tenants.includes(tenant)) return deny("WRONG_TENANT", "not a member of this tenant", 7, principal);
      if (!identity.permissions.includes(action)) return deny("FORBIDDEN", `may not ${action}`, 7, principal);
      return { allowed: true, reason: "ALLOWED", message: "", principal, version: 7 };
    },
  };
}

// ---- request and response helpers ----------------------------------------------------------

const RULES = parseRules(`
rules:
  - match: GET /v1/orders/*
    action: read:orders
  - match: DELETE /v1/orders/*
    action: delete:orders
  - match: GET /v1/users/**
    action: read:users
`);

interface RequestShape {
  method?: string;
  path?: string;
  host?: string;
  headers?: Record<string, string>;
  extensions?: Record<string, string>;
  headerMap?: { key: string; value?: string; raw?: string }[];
}

function request(shape: RequestShape = {}): CheckRequest {
  const method = shape.method ?? "GET";
  const path = shape.path ?? "/v1/orders/42";
  const host = shape.host ?? "api.example.com";
  const headers =
    shape.headerMap !== undefined
      ? {}
      : { ":method": method, ":path": path, ":authority": host, ":scheme": "https", "x-tenant-id": "acme", ...shape.headers };
  return create(CheckRequestSchema, {
    attributes: {
      contextExtensions: shape.extensions ?? {},
      request: {
        http: {
          method: shape.headerMap === undefined ? method : "",
          path: shape.headerMap === undefined ? path : "",
          host: shape.headerMap === undefined ? host : "",
          headers,
          headerMap:
            shape.headerMap === undefined
              ? undefined
              : {
                  headers: shape.headerMap.map((h) => ({
                    key: h.key,
                    value: h.value ?? "",
                    rawValue: h.raw === undefined ? new Uint8Array() : new TextEncoder().encode(h.raw),
                  })),
                },
        },
      },
    },
  });
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

function handler(options: Partial<ExtAuthzOptions> = {}) {
  let n = 0;
  const decider = createFakeDecider();
  const outcomes: ExtAuthzOutcome[] = [];
  const check = createExtAuthzHandler({
    decider,
    rules: RULES,
    newDecisionId: () => `d-${++n}`,
    onOutcome: (o) => outcomes.push(o),
    ...options,
  });
  return { check, decider, outcomes };
}

function okHeaders(response: CheckResponse): Record<string, string> {
  if (response.httpResponse.case !== "okResponse") throw new Error(`expected ok_response, got ${response.httpResponse.case}`);
  return Object.fromEntries(response.httpResponse.value.headers.map((h) => [h.header!.key, h.header!.value]));
}

function okRemoved(response: CheckResponse): string[] {
  if (response.httpResponse.case !== "okResponse") throw new Error(`expected ok_response, got ${response.httpResponse.case}`);
  return response.httpResponse.value.headersToRemove;
}

// ---- tests ---------------------------------------------------------------------------------

describe("ext_authz: allow", () => {
  it("allows with the principal, tenant, roles and decision id upstream, and strips the bearer header", async () => {
    const { check, decider } = handler();
    const response = await check(request({ headers: bearer("vk_alice") }));
    expect(response.status?.code).toBe(0);
    expect(okHeaders(response)).toEqual({
      "x-verdict-principal": "u-alice",
      "x-verdict-tenant": "acme",
      "x-verdict-roles": "READ,WRITE",
      "x-verdict-decision-id": "d-1",
    });
    expect(okRemoved(response)).toEqual(["authorization"]);
    expect(decider.calls).toEqual([["vk_alice", "read:orders", "acme"]]);
  });

  it("overwrites client-sent principal headers, keeping empty values", async () => {
    const { check } = handler();
    const response = await check(request({ headers: { "x-api-key": "vk_robot", "x-verdict-roles": "SUPER" } }));
    if (response.httpResponse.case !== "okResponse") throw new Error("expected allow");
    for (const option of response.httpResponse.value.headers) {
      expect(option.appendAction).toBe(HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD);
      expect(option.keepEmptyValue).toBe(true);
    }
    expect(okHeaders(response)["x-verdict-roles"]).toBe("");
  });

  it("names an API key principal key:<id> and strips x-api-key", async () => {
    const { check } = handler();
    const response = await check(request({ headers: { "x-api-key": "vk_robot" } }));
    expect(okHeaders(response)["x-verdict-principal"]).toBe("key:k123");
    expect(okRemoved(response)).toEqual(["x-api-key"]);
  });

  it("keeps the credential upstream when stripUpstream is false", async () => {
    const rules = parseRules("rules: [{match: GET /v1/orders/*, action: read:orders}]\ncredentials: {stripUpstream: false}\n");
    const { check } = handler({ rules });
    const response = await check(request({ headers: bearer("vk_alice") }));
    expect(response.status?.code).toBe(0);
    expect(okRemoved(response)).toEqual([]);
  });

  it("uses configured header names", async () => {
    const rules = parseRules(
      "rules: [{match: GET /v1/orders/*, action: read:orders}]\nheaders: {principal: x-p, tenant: x-t, roles: x-r, decisionId: x-d}\n",
    );
    const { check } = handler({ rules });
    expect(Object.keys(okHeaders(await check(request({ headers: bearer("vk_alice") }))))).toEqual(["x-p", "x-t", "x-r", "x-d"]);
  });

  it("matches the path without its query string", async () => {
    const { check, decider } = handler();
    await check(request({ path: "/v1/orders/42?select=a/b/c", headers: bearer("vk_alice") }));
    expect(decider.calls[0][1]).toBe("read:orders");
  });

  it("accepts an asynchronous decider", async () => {
    const fake = createFakeDecider();
    const { check } = handler({ decider: { check: async (c, a, t) => fake.check(c, a, t) } });
    expect((await check(request({ headers: bearer("vk_alice") }))).status?.code).toBe(0);
  });

  it("reads method and path from pseudo-headers when the fields are empty", async () => {
    const { check, decider } = handler();
    const req = request({ method: "DELETE", headers: bearer("vk_alice") });
    req.attributes!.request!.http!.method = "";
    req.attributes!.request!.http!.path = "";
    expect((await check(req)).status?.code).toBe(0);
    expect(decider.calls[0][1]).toBe("delete:orders");
  });

  it("reads header_map when headers is empty, joining repeats and decoding raw values", async () => {
    const { check, decider } = handler();
    const response = await check(
      request({
        headerMap: [
          { key: ":method", value: "GET" },
          { key: ":path", value: "/v1/orders/1" },
          { key: "Authorization", raw: "Bearer vk_alice" },
          { key: "x-tenant-id", raw: "globex" },
          { key: "x-extra", value: "a" },
          { key: "x-extra", value: "b" },
        ],
      }),
    );
    expect(response.status?.code).toBe(0);
    expect(decider.calls).toEqual([["vk_alice", "read:orders", "globex"]]);
  });
});

describe("ext_authz: credential sources", () => {
  it("prefers bearer over x-api-key by default, and follows the configured order", async () => {
    const both = { ...bearer("vk_alice"), "x-api-key": "vk_robot" };
    const first = handler();
    await first.check(request({ headers: both }));
    expect(first.decider.calls[0][0]).toBe("vk_alice");

    const rules = parseRules("rules: [{match: GET /v1/orders/*, action: read:orders}]\ncredentials: {from: [api-key, bearer]}\n");
    const second = handler({ rules });
    const response = await second.check(request({ headers: both }));
    expect(second.decider.calls[0][0]).toBe("vk_robot");
    // Both credentials are stripped, not only the one used (issue 8 item 8).
    expect(okRemoved(response)).toEqual(["authorization", "x-api-key"]);
  });

  it("accepts any case of the Bearer scheme and ignores other schemes", async () => {
    const { check, decider } = handler();
    expect((await check(request({ headers: { authorization: "bEaReR   vk_alice " } }))).status?.code).toBe(0);
    expect(decider.calls[0][0]).toBe("vk_alice");
    const basic = denial(await check(request({ headers: { authorization: "Basic dXNlcjpwYXNz" } })));
    expect(basic.http).toBe(401);
    expect(basic.body.reason).toBe("UNAUTHENTICATED");
    expect(decider.calls).toHaveLength(1);
  });

  it("reads a configured API key header", async () => {
    const rules = parseRules("rules: [{match: GET /v1/orders/*, action: read:orders}]\ncredentials: {apiKeyHeader: x-verdict-key}\n");
    const { check, decider } = handler({ rules });
    expect(denial(await check(request({ headers: { "x-api-key": "vk_robot" } }))).http).toBe(401);
    const response = await check(request({ headers: { "x-verdict-key": "vk_robot" } }));
    expect(decider.calls).toEqual([["vk_robot", "read:orders", "acme"]]);
    expect(okRemoved(response)).toEqual(["x-verdict-key"]);
  });

  describe("session cookie", () => {
    const rules = parseRules("rules: [{match: GET /v1/orders/*, action: read:orders}]\ncredentials: {cookie: vsession}\n");

    it("reads the cookie and rewrites the cookie header without it", async () => {
      const { check, decider } = handler({ rules });
      const response = await check(request({ headers: { cookie: "theme=dark; vsession=vk_alice; lang=en" } }));
      expect(decider.calls[0][0]).toBe("vk_alice");
      expect(okHeaders(response).cookie).toBe("theme=dark; lang=en");
      expect(okRemoved(response)).toEqual([]);
    });

    it("removes the cookie header when the session cookie was the only one, and unquotes values", async () => {
      const { check, decider } = handler({ rules });
      const response = await check(request({ headers: { cookie: 'vsession="vk_alice"' } }));
      expect(decider.calls[0][0]).toBe("vk_alice");
      expect(okRemoved(response)).toEqual(["cookie"]);
      expect(okHeaders(response).cookie).toBeUndefined();
    });

    it("does not take a cookie whose name only starts with the session name", async () => {
      const { check, decider } = handler({ rules });
      const response = await check(request({ headers: { cookie: "vsession2=vk_alice, xvsession=vk_alice" } }));
      expect(denial(response).http).toBe(401);
      expect(decider.calls).toHaveLength(0);
    });
  });
});

describe("ext_authz: tenant", () => {
  const withTenant = (yaml: string): CompiledRules =>
    parseRules(`rules: [{match: GET /v1/orders/*, action: read:orders}]\ncredentials: {stripUpstream: false}\ntenant:\n${yaml}`);

  it.each<[string, string, RequestShape, string]>([
    ["a header", "  from: [{header: x-org}]\n", { headers: { ...bearer("vk_alice"), "x-org": "globex" } }, "globex"],
    ["a JWT claim, read without verification", "  from: [{jwtClaim: tid}]\n", { headers: bearer(ALICE_JWT) }, "globex"],
    ["the host pattern, ignoring the port and case", '  from: [{host: "{tenant}.example.com"}]\n', { host: "GLOBEX.example.com:8443", headers: bearer("vk_alice") }, "globex"],
    ["a context extension", "  from: [{contextExtension: tenant}]\n", { extensions: { tenant: "globex" }, headers: bearer("vk_alice") }, "globex"],
    ["the first source that yields", "  from: [{header: x-org}, {jwtClaim: tid}]\n", { headers: bearer(ALICE_JWT) }, "globex"],
    ["the default when no source yields", "  from: [{header: x-org}]\n  default: acme\n", { headers: bearer("vk_alice") }, "acme"],
    ["the verdict.tenant override above every source", "  from: [{header: x-org}]\n", { headers: { ...bearer("vk_alice"), "x-org": "acme" }, extensions: { "verdict.tenant": "globex" } }, "globex"],
  ])("comes from %s", async (_name, yaml, shape, tenant) => {
    const { check, decider } = handler({ rules: withTenant(yaml) });
    const response = await check(request(shape));
    expect(decider.calls[0][2]).toBe(tenant);
    expect(okHeaders(response)["x-verdict-tenant"]).toBe(tenant);
  });

  it.each<[string, string, RequestShape]>([
    ["a host outside the pattern", '  from: [{host: "{tenant}.example.com"}]\n', { host: "example.org", headers: bearer("vk_alice") }],
    ["a host with a nested subdomain", '  from: [{host: "{tenant}.example.com"}]\n', { host: "a.b.example.com", headers: bearer("vk_alice") }],
    ["a JWT claim from a non-JWT", "  from: [{jwtClaim: tid}]\n", { headers: bearer("vk_alice") }],
    ["a JWT whose payload is not JSON", "  from: [{jwtClaim: tid}]\n", { headers: bearer("aaa.bm90IGpzb24.ccc") }],
    ["a JWT claim that is not a string", "  from: [{jwtClaim: tid}]\n", { headers: bearer(jwt({ tid: 42 })) }],
    ["no header", "  from: [{header: x-org}]\n", { headers: bearer("vk_alice") }],
  ])("is missing with %s: 400 INVALID_REQUEST without calling the decider", async (_name, yaml, shape) => {
    const { check, decider } = handler({ rules: withTenant(yaml) });
    const d = denial(await check(request(shape)));
    expect([d.grpc, d.http, d.body.reason, d.body.message]).toEqual([3, 400, "INVALID_REQUEST", "no tenant in the request"]);
    expect(decider.calls).toHaveLength(0);
  });

  it.each(["ACME", "acme corp", "../etc", "a".repeat(64), "acme\u0000"])("rejects the malformed tenant %j with 400", async (tenant) => {
    const { check, decider } = handler();
    const d = denial(await check(request({ headers: { ...bearer("vk_alice"), "x-tenant-id": tenant } })));
    expect([d.http, d.body.reason, d.body.message]).toEqual([400, "INVALID_REQUEST", "the tenant id is malformed"]);
    expect(decider.calls).toHaveLength(0);
  });

  it("rejects a malformed tenant from the route override too", async () => {
    const { check } = handler();
    const d = denial(await check(request({ headers: bearer("vk_alice"), extensions: { "verdict.tenant": "Bad Tenant" } })));
    expect(d.http).toBe(400);
  });
});

describe("ext_authz: action overrides and unmatched routes", () => {
  it("verdict.action replaces the rule's action", async () => {
    const { check, decider } = handler();
    await check(request({ headers: bearer("vk_alice"), extensions: { "verdict.action": "read:users" } }));
    expect(decider.calls[0][1]).toBe("read:users");
  });

  it("verdict.action gives an action to a route no rule matches", async () => {
    const { check } = handler();
    const response = await check(request({ path: "/elsewhere", headers: bearer("vk_alice"), extensions: { "verdict.action": "read:orders" } }));
    expect(response.status?.code).toBe(0);
  });

  it("a configured override key is honoured and the default one ignored", async () => {
    const rules = parseRules("rules: [{match: GET /v1/orders/*, action: read:orders}]\noverrides: {actionKey: my.action}\n");
    const { check, decider } = handler({ rules });
    await check(request({ headers: bearer("vk_alice"), extensions: { "my.action": "read:users", "verdict.action": "delete:orders" } }));
    expect(decider.calls[0][1]).toBe("read:users");
  });

  it.each(["not an action", "", "read:orders "])("a malformed verdict.action %j is 400 INVALID_REQUEST naming the route configuration, never an internal error", async (value) => {
    const { check, decider, outcomes } = handler();
    const d = denial(await check(request({ headers: bearer("vk_alice"), extensions: { "verdict.action": value } })));
    expect([d.grpc, d.http, d.body.reason]).toEqual([3, 400, "INVALID_REQUEST"]);
    expect(d.body.message).toBe("the route's verdict.action context extension is not a valid action (Envoy's route configuration)");
    expect(decider.calls).toHaveLength(0);
    expect(outcomes[0].error).toBeUndefined();
    expect(outcomes[0].configProblem).toBe(`context extension verdict.action ${JSON.stringify(value)} is not a valid action`);
  });

  it("a malformed action under a configured override key names that key, whatever failureStatus says", async () => {
    const rules = parseRules("rules: [{match: GET /v1/orders/*, action: read:orders}]\noverrides: {actionKey: my.action}\nfailureStatus: 403\n");
    const { check, outcomes } = handler({ rules });
    const d = denial(await check(request({ headers: bearer("vk_alice"), extensions: { "my.action": "*" } })));
    expect([d.grpc, d.http, d.body.reason]).toEqual([3, 400, "INVALID_REQUEST"]);
    expect(d.body.message).toContain("my.action");
    expect(outcomes[0].configProblem).toBe('context extension my.action "*" is not a valid action');
  });

  it.each([
    ["the verdict.tenant override", "", { "verdict.tenant": "Bad Tenant" }, 'context extension verdict.tenant "Bad Tenant" is not a valid tenant id'],
    ["a contextExtension tenant source", "tenant:\n  from: [{contextExtension: org}]\n", { org: "Acme Corp" }, 'context extension org "Acme Corp" is not a valid tenant id'],
  ])("a malformed tenant from %s is 400 and reported as a route configuration problem", async (_name, yaml, extensions, problem) => {
    const rules = parseRules(`rules: [{match: GET /v1/orders/*, action: read:orders}]\n${yaml}`);
    const { check, outcomes } = handler({ rules });
    const d = denial(await check(request({ headers: { ...bearer("vk_alice"), "x-tenant-id": "" }, extensions })));
    expect([d.http, d.body.reason, d.body.message]).toEqual([400, "INVALID_REQUEST", "the tenant id is malformed"]);
    expect(outcomes[0].configProblem).toBe(problem);
  });

  it("a malformed tenant sent by the client is no route configuration problem", async () => {
    const { check, outcomes } = handler();
    denial(await check(request({ headers: { ...bearer("vk_alice"), "x-tenant-id": "Bad Tenant" } })));
    expect(outcomes[0].configProblem).toBeUndefined();
  });

  it("a request no rule matches is 403 FORBIDDEN without calling the decider", async () => {
    const { check, decider } = handler();
    const d = denial(await check(request({ method: "POST", headers: bearer("vk_alice") })));
    expect([d.grpc, d.http, d.body.reason, d.body.message]).toEqual([7, 403, "FORBIDDEN", "no route rule matches this request"]);
    expect(decider.calls).toHaveLength(0);
  });
});

describe("ext_authz: exempt paths", () => {
  it("allows /healthz without a credential or a decision, removing client-sent principal headers", async () => {
    const { check, decider, outcomes } = handler();
    const response = await check(request({ path: "/healthz", headers: { "x-verdict-principal": "u-root" } }));
    expect(response.status?.code).toBe(0);
    expect(okHeaders(response)).toEqual({ "x-verdict-decision-id": "d-1" });
    expect(okRemoved(response)).toEqual(["x-verdict-principal", "x-verdict-tenant", "x-verdict-roles"]);
    expect(decider.calls).toHaveLength(0);
    expect(outcomes[0]).toMatchObject({ allowed: true, reason: "ALLOWED", principal: undefined });
  });
});

describe("ext_authz: denials", () => {
  it.each<[string, string, number, number, string, string | undefined]>([
    ["no credential", "", 16, 401, "UNAUTHENTICATED", 'Bearer realm="verdict"'],
    ["an unknown credential", "vk_nobody", 16, 401, "UNKNOWN_CREDENTIAL", 'Bearer realm="verdict", error="invalid_token"'],
    ["a malformed credential", "vk_malformed", 16, 401, "MALFORMED_CREDENTIAL", 'Bearer realm="verdict", error="invalid_token"'],
    ["an expired credential", "vk_expired", 16, 401, "EXPIRED", 'Bearer realm="verdict", error="invalid_token"'],
    ["a revoked credential", "vk_revoked", 16, 401, "REVOKED", 'Bearer realm="verdict", error="invalid_token"'],
    ["a disabled principal", "vk_disabled", 16, 401, "DISABLED", 'Bearer realm="verdict", error="invalid_token"'],
    ["a bad token signature", "vk_badsig", 16, 401, "TOKEN_BAD_SIGNATURE", 'Bearer realm="verdict", error="invalid_token"'],
    ["a forbidden action", "vk_robot|delete", 7, 403, "FORBIDDEN", undefined],
    ["the wrong tenant", "vk_robot|globex", 7, 403, "WRONG_TENANT", undefined],
    ["an unknown tenant", "vk_unknowntenant", 7, 403, "UNKNOWN_TENANT", undefined],
    ["a rate limit", "vk_ratelimited", 8, 429, "RATE_LIMITED", undefined],
    ["a stale engine", "vk_stale", 14, 503, "STALE", undefined],
    ["an internal error", "vk_internal", 14, 503, "INTERNAL_ERROR", undefined],
  ])("%s: gRPC %i, HTTP %i, reason %s", async (_name, credential, grpc, http, reason, challenge) => {
    const { check, outcomes } = handler();
    const [key, variant] = credential.split("|");
    const headers: Record<string, string> = key === "" ? {} : bearer(key);
    if (variant === "globex") headers["x-tenant-id"] = "globex";
    const response = await check(request({ method: variant === "delete" ? "DELETE" : "GET", headers }));
    const d = denial(response);
    expect(d.grpc).toBe(grpc);
    expect(response.status?.message).toBe(reason);
    expect(d.http).toBe(http);
    expect(d.headers["content-type"]).toBe("application/json");
    expect(d.headers["cache-control"]).toBe("no-store");
    expect(d.headers["x-verdict-decision-id"]).toBe("d-1");
    expect(d.headers["www-authenticate"]).toBe(challenge);
    expect(d.body.reason).toBe(reason);
    expect(d.body.decision_id).toBe("d-1");
    expect(d.body.message.length).toBeGreaterThan(0);
    expect(d.body.message).not.toContain(key || "\u0000");
    expect(outcomes[0]).toMatchObject({ allowed: false, reason, httpStatus: http, grpcCode: grpc, decisionId: "d-1" });
  });

  it("passes the decider's message to the client and the principal to the observer", async () => {
    const { check, outcomes } = handler();
    const d = denial(await check(request({ method: "DELETE", headers: bearer("vk_robot") })));
    expect(d.body).toEqual({ reason: "FORBIDDEN", message: "may not delete:orders", decision_id: "d-1" });
    expect(outcomes[0]).toMatchObject({ action: "delete:orders", tenant: "acme", principal: { keyId: "k123" } });
  });

  it("an empty credential is 400 INVALID_REQUEST with an invalid_request challenge", async () => {
    const { check, decider } = handler();
    const d = denial(await check(request({ headers: { "x-api-key": "  " } })));
    expect([d.grpc, d.http, d.body.reason]).toEqual([3, 400, "INVALID_REQUEST"]);
    expect(d.headers["www-authenticate"]).toBe('Bearer realm="verdict", error="invalid_request"');
    expect(decider.calls).toHaveLength(0);
  });

  it("STALE and INTERNAL_ERROR follow failureStatus 403", async () => {
    const rules = parseRules("rules: [{match: GET /v1/orders/*, action: read:orders}]\nfailureStatus: 403\n");
    const { check } = handler({ rules });
    for (const key of ["vk_stale", "vk_internal"]) {
      const d = denial(await check(request({ headers: bearer(key) })));
      expect([d.grpc, d.http]).toEqual([7, 403]);
    }
  });
});

describe("ext_authz: failures close", () => {
  it.each<[string, Decider, string]>([
    ["throws", { check: () => { throw new Error("db exploded: password=hunter2"); } }, "the authorization service failed"],
    ["rejects", { check: () => Promise.reject(new Error("boom")) }, "the authorization service failed"],
    ["never answers", { check: () => new Promise<Decision>(() => {}) }, "the decision timed out"],
    ["allows without a principal", { check: () => ({ allowed: true, reason: "ALLOWED", message: "", principal: undefined, version: 1 }) }, "the decision allowed the request without a principal"],
  ])("a decider that %s gets the failure status", async (_name, decider, message) => {
    const { check, outcomes } = handler({ decider, timeoutMs: 20 });
    const d = denial(await check(request({ headers: bearer("vk_alice") })));
    expect([d.grpc, d.http, d.body.reason, d.body.message]).toEqual([14, 503, "INTERNAL_ERROR", message]);
    expect(d.body.decision_id).toBe("d-1");
    expect(JSON.stringify(d)).not.toContain("hunter2");
    expect(outcomes[0].reason).toBe("INTERNAL_ERROR");
  });

  it("reports the exception to the observer only", async () => {
    const failure = new Error("boom");
    const { check, outcomes } = handler({ decider: { check: () => { throw failure; } } });
    await check(request({ headers: bearer("vk_alice") }));
    expect(outcomes[0].error).toBe(failure);
    expect(outcomes[0]).toMatchObject({ action: "read:orders", tenant: "acme" });
  });

  it("with failureStatus 403 a thrown error is 403 PERMISSION_DENIED", async () => {
    const rules = parseRules("rules: [{match: GET /v1/orders/*, action: read:orders}]\nfailureStatus: 403\n");
    const { check } = handler({ rules, decider: { check: () => { throw new Error("boom"); } } });
    const d = denial(await check(request({ headers: bearer("vk_alice") })));
    expect([d.grpc, d.http, d.body.reason]).toEqual([7, 403, "INTERNAL_ERROR"]);
  });

  it("an observer that throws does not change the answer", async () => {
    const { check } = handler({ onOutcome: () => { throw new Error("metrics down"); } });
    expect((await check(request({ headers: bearer("vk_alice") }))).status?.code).toBe(0);
  });

  it("rejects a non-positive timeout when created", () => {
    expect(() => createExtAuthzHandler({ decider: createFakeDecider(), rules: RULES, timeoutMs: 0 })).toThrow(RangeError);
  });
});

describe("ext_authz: bad input gets a clean 400", () => {
  const limited = parseRules(
    "rules: [{match: GET /v1/orders/*, action: read:orders}]\nlimits: {maxHeaders: 8, maxHeaderValueLength: 64, maxPathLength: 40}\n",
  );

  it.each<[string, RequestShape, string]>([
    ["too many headers", { headers: { ...bearer("vk_alice"), a: "1", b: "2", c: "3" } }, "more than 8 headers"],
    ["an oversized header value", { headers: { ...bearer("vk_alice"), "x-big": "x".repeat(65) } }, "a header value is longer than 64 bytes"],
    ["an oversized credential", { headers: bearer("vk_" + "a".repeat(60)) }, "a header value is longer than 64 bytes"],
    ["a long path", { path: "/v1/orders/" + "9".repeat(30), headers: bearer("vk_alice") }, "the path is longer than 40 characters"],
    ["a relative path", { path: "v1/orders/1", headers: bearer("vk_alice") }, "the path must start with '/'"],
    ["an empty path", { path: "", headers: bearer("vk_alice") }, "the request has no path"],
    ["a '..' segment", { path: "/v1/orders/../admin", headers: bearer("vk_alice") }, "the path has a '.' or '..' segment (enable path normalization in Envoy)"],
    ["an encoded '..' segment", { path: "/v1/orders/%2E%2e", headers: bearer("vk_alice") }, "the path has a '.' or '..' segment (enable path normalization in Envoy)"],
    ["a trailing '.' segment", { path: "/v1/orders/.?x=1", headers: bearer("vk_alice") }, "the path has a '.' or '..' segment (enable path normalization in Envoy)"],
  ])("%s", async (_name, shape, message) => {
    const { check, decider } = handler({ rules: limited });
    const d = denial(await check(request(shape)));
    expect([d.grpc, d.http, d.body.reason, d.body.message]).toEqual([3, 400, "INVALID_REQUEST", message]);
    expect(decider.calls).toHaveLength(0);
  });

  it("dots inside a segment are fine", async () => {
    const { check } = handler({ rules: limited });
    expect((await check(request({ path: "/v1/orders/a..b", headers: bearer("vk_alice") }))).status?.code).toBe(0);
    expect((await check(request({ path: "/v1/orders/.well", headers: bearer("vk_alice") }))).status?.code).toBe(0);
  });

  it("a request without HTTP attributes", async () => {
    const { check } = handler();
    const d = denial(await check(create(CheckRequestSchema, {})));
    expect([d.http, d.body.reason, d.body.message]).toEqual([400, "INVALID_REQUEST", "the request has no HTTP attributes"]);
  });
});

describe("ext_authz: decision ids and rules sources", () => {
  it("gives every answer a fresh random id by default", async () => {
    const check = createExtAuthzHandler({ decider: createFakeDecider(), rules: RULES });
    const allow = okHeaders(await check(request({ headers: bearer("vk_alice") })))["x-verdict-decision-id"];
    const refused = denial(await check(request({ headers: bearer("vk_nobody") })));
    expect(allow).toMatch(/^[0-9a-f-]{36}$/);
    expect(refused.body.decision_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(refused.headers["x-verdict-decision-id"]).toBe(refused.body.decision_id);
    expect(refused.body.decision_id).not.toBe(allow);
  });

  it("reads the current rules of a source on every request", async () => {
    let rules = RULES;
    const { check } = handler({ rules: { current: () => rules } });
    expect((await check(request({ path: "/v2/orders/1", headers: bearer("vk_alice") }))).status?.code).toBe(7);
    rules = parseRules("rules: [{match: GET /v2/orders/*, action: read:orders}]\n");
    expect((await check(request({ path: "/v2/orders/1", headers: bearer("vk_alice") }))).status?.code).toBe(0);
  });

  it("responses survive the binary wire with the HTTP status Envoy expects", async () => {
    const { check } = handler();
    const bytes = toBinary(CheckResponseSchema, await check(request({ headers: bearer("vk_expired") })));
    const decoded = fromBinary(CheckResponseSchema, bytes);
    if (decoded.httpResponse.case !== "deniedResponse") throw new Error("expected denied_response");
    expect(decoded.httpResponse.value.status?.code).toBe(StatusCode.Unauthorized);
    expect(decoded.status?.code).toBe(16);
  });
});

describe("generated Envoy messages keep Envoy's field numbers", () => {
  const numbers = (schema: DescMessage): Record<string, number> => Object.fromEntries(schema.fields.map((f) => [f.name, f.number]));

  it.each<[string, DescMessage, Record<string, number>]>([
    ["CheckRequest", CheckRequestSchema, { attributes: 1 }],
    ["AttributeContext", AttributeContextSchema, { source: 1, destination: 2, request: 4, context_extensions: 10, metadata_context: 11, tls_session: 12, route_metadata_context: 13 }],
    ["HttpRequest", AttributeContext_HttpRequestSchema, { id: 1, method: 2, headers: 3, path: 4, host: 5, scheme: 6, query: 7, fragment: 8, size: 9, protocol: 10, body: 11, raw_body: 12, header_map: 13 }],
    ["CheckResponse", CheckResponseSchema, { status: 1, denied_response: 2, ok_response: 3, dynamic_metadata: 4, error_response: 5 }],
    ["DeniedHttpResponse", DeniedHttpResponseSchema, { status: 1, headers: 2, body: 3 }],
    ["OkHttpResponse", OkHttpResponseSchema, { headers: 2, dynamic_metadata: 3, headers_to_remove: 5, response_headers_to_add: 6, query_parameters_to_set: 7, query_parameters_to_remove: 8 }],
    ["HeaderValueOption", HeaderValueOptionSchema, { header: 1, append: 2, append_action: 3, keep_empty_value: 4 }],
    ["HeaderValue", HeaderValueSchema, { key: 1, value: 2, raw_value: 3 }],
    ["google.rpc.Status", StatusSchema, { code: 1, message: 2, details: 3 }],
  ])("%s", (_name, schema, expected) => {
    expect(numbers(schema)).toEqual(expected);
  });

  it("the service is envoy.service.auth.v3.Authorization", async () => {
    const { Authorization } = await import("../../gen/envoy/service/auth/v3/external_auth_pb.js");
    expect(Authorization.typeName).toBe("envoy.service.auth.v3.Authorization");
    expect(Authorization.method.check.name).toBe("Check");
  });
});

// ---- issue 8 item 2: paths an upstream may read differently, method overrides --------------

describe("ext_authz: paths an upstream may read differently are refused (issue 8 item 2)", () => {
  /** The documented example's shape: `/public/**` exempt, route rules for orders. */
  const EXAMPLE = parseRules(`
rules:
  - match: GET /v1/orders/*
    action: read:orders
  - match: DELETE /v1/orders/*
    action: delete:orders
  - match: "* /v1/admin/**"
    action: admin:verdict
exempt: [/healthz, /public/**]
`);
  const BUILT_IN = builtInRules();
  const ALL_ALICE = { ...bearer("vk_alice") };

  async function expectRefused(rules: CompiledRules, shape: RequestShape, message: RegExp): Promise<void> {
    const { check, decider } = handler({ rules });
    const d = denial(await check(request(shape)));
    expect([d.grpc, d.http, d.body.reason], `${shape.method ?? "GET"} ${shape.path}`).toEqual([3, 400, "INVALID_REQUEST"]);
    expect(d.body.message).toMatch(message);
    expect(decider.calls).toHaveLength(0);
  }

  it.each<[string, string]>([
    ["GET", "/public/..%2fv1%2fadmin%2fusers"],
    ["DELETE", "/public/..%2f..%2fv1%2forders%2f42"],
    ["GET", "/public/%2e%2e%2fv1/admin/users"],
    ["GET", "/public/..%2Fv1%2Fadmin%2Fusers"],
    ["GET", "/public/..%5cv1%5cadmin"],
    ["GET", "/public/..%5Cv1%5Cadmin"],
    ["GET", "/public/..\\v1\\admin\\users"],
    ["GET", "/public/..;/v1/admin/users"],
    ["GET", "/public;x/../v1/admin/users"],
    ["GET", "/public//../v1/admin/users"],
    ["GET", "/public/%2E%2E/v1/admin/users"],
  ])("the issue's exempt bypass %s %s, with no credential, is 400 not exempt", async (method, path) => {
    await expectRefused(EXAMPLE, { method, path, headers: {} }, /^the path /);
  });

  it.each<[string, string]>([
    ["GET", "/v1/orders/..%2fadmin"],
    ["GET", "/v1/orders/..%2F..%2Fadmin"],
    ["GET", "/v1/orders/..\\admin"],
    ["GET", "/v1/orders/..;/admin"],
    ["GET", "/v1/orders;/42"],
    ["GET", "/v1//orders/42"],
    ["DELETE", "/v1/orders/x%2f..%2f..%2fadmin"],
  ])("the issue's built-in mapping bypass %s %s is 400, not read:orders", async (method, path) => {
    await expectRefused(BUILT_IN, { method, path, headers: ALL_ALICE }, /^the path /);
  });

  it.each<[string, string, RegExp]>([
    ["double encoding", "/public/..%252fv1%252fadmin", /percent-encoded twice/],
    ["double encoding, upper case", "/public/%252E%252E/v1/admin", /percent-encoded twice/],
    ["overlong UTF-8 '/'", "/public/..%c0%afv1%c0%afadmin", /percent-encoding/],
    ["overlong UTF-8 '.'", "/public/%c0%ae%c0%ae/v1/admin", /percent-encoding/],
    ["a malformed escape", "/public/%zz/x", /percent-encoding/],
    ["a truncated escape", "/public/x%2", /percent-encoding/],
    ["an encoded NUL", "/public/x%00/../../v1/admin", /control character/],
    ["an encoded NUL alone", "/v1/orders/42%00", /control character/],
    ["a raw NUL", "/public/x\u0000/v1/admin", /control character/],
    ["a raw newline", "/public/x\n/v1/admin", /control character/],
    ["a fragment in the path", "/public/x#/../../v1/admin", /fragment/],
    ["an encoded '?'", "/public/..%3f/v1/admin", /'\?' or '#'/],
    ["an encoded '#'", "/public/x%23/../v1/admin", /'\.' or '\.\.' segment|'\?' or '#'/],
    ["a full-width solidus", "/public/..%ef%bc%8fv1%ef%bc%8fadmin", /read as/],
    ["a two-dot leader", "/public/%e2%80%a5/v1/admin", /read as/],
  ])("siblings: %s", async (_name, path, message) => {
    await expectRefused(EXAMPLE, { path, headers: {} }, message);
  });

  it("still serves ordinary paths: exempt, encoded characters that are not separators, queries", async () => {
    const { check, decider } = handler({ rules: EXAMPLE });
    expect((await check(request({ path: "/public/docs/index.html", headers: {} }))).status?.code).toBe(0);
    expect((await check(request({ path: "/public/caf%C3%A9%20menu", headers: {} }))).status?.code).toBe(0);
    expect((await check(request({ path: "/v1/orders/a..b", headers: ALL_ALICE }))).status?.code).toBe(0);
    expect((await check(request({ path: "/v1/orders/my%20order", headers: ALL_ALICE }))).status?.code).toBe(0);
    expect((await check(request({ path: "/v1/orders/42?next=..%2f..%2fadmin;x#y", headers: ALL_ALICE }))).status?.code).toBe(0);
    expect(decider.calls.map((c) => c[1])).toEqual(["read:orders", "read:orders", "read:orders"]);
  });

  it("with ambiguousPaths 'normalize', matches the normalised path instead", async () => {
    const { check, decider } = handler({ rules: EXAMPLE, ambiguousPaths: "normalize" });
    // No longer exempt: the path an upstream would serve is /v1/admin/users.
    expect(denial(await check(request({ path: "/public/..%2fv1%2fadmin%2fusers", headers: {} }))).body.reason).toBe("UNAUTHENTICATED");
    expect(denial(await check(request({ path: "/public/..;/v1/admin/users", headers: ALL_ALICE }))).body.reason).toBe("FORBIDDEN");
    expect((await check(request({ method: "DELETE", path: "/public/..%2f..%2fv1%2forders%2f42", headers: ALL_ALICE }))).status?.code).toBe(0);
    expect((await check(request({ path: "/v1//orders/./42", headers: ALL_ALICE }))).status?.code).toBe(0);
    expect(decider.calls.map((c) => c[1])).toEqual(["admin:verdict", "delete:orders", "read:orders"]);
    // What cannot be normalised reliably is refused in either mode.
    for (const path of ["/public/..%252fv1", "/public/%c0%ae%c0%ae/v1", "/v1/orders/42%00", "/public/..%ef%bc%8fv1"]) {
      expect(denial(await check(request({ path, headers: ALL_ALICE }))).http, path).toBe(400);
    }
  });
});

describe("ext_authz: method override headers are refused (issue 8 item 2)", () => {
  it.each(["x-http-method-override", "x-method-override", "x-http-method"])("%s on a GET is 400, not read:orders", async (name) => {
    const { check, decider } = handler({ rules: builtInRules() });
    const d = denial(await check(request({ path: "/v1/orders/42", headers: { ...bearer("vk_alice"), [name]: "DELETE" } })));
    expect([d.grpc, d.http, d.body.reason]).toEqual([3, 400, "INVALID_REQUEST"]);
    expect(d.body.message).toBe("method override headers (x-http-method-override, x-method-override, x-http-method) are refused");
    expect(decider.calls).toHaveLength(0);
  });

  it("the wire decoder keeps the override headers", () => {
    expect(headerNamesRead(RULES)).toEqual(expect.arrayContaining(["x-http-method-override", "x-method-override", "x-http-method"]));
  });
});

// ---- issue 8 item 8: credentials forwarded upstream -------------------------------------------

describe("ext_authz: no credential Verdict recognises goes upstream (issue 8 item 8)", () => {
  const withCookie = (extra = ""): CompiledRules =>
    parseRules(`rules: [{match: GET /v1/orders/*, action: read:orders}]\nexempt: [/public/**]\ncredentials: {cookie: vsession${extra}}\n`);

  it("a bearer request sheds x-api-key and the session cookie too, keeping other cookies", async () => {
    const { check, decider } = handler({ rules: withCookie() });
    const response = await check(request({ headers: { ...bearer("vk_alice"), "x-api-key": "vk_robot", cookie: "theme=dark; vsession=vk_robot" } }));
    expect(decider.calls[0][0]).toBe("vk_alice");
    expect(okRemoved(response)).toEqual(["authorization", "x-api-key"]);
    expect(okHeaders(response).cookie).toBe("theme=dark");
  });

  it("an API key request sheds any authorization header and a lone session cookie", async () => {
    const { check, decider } = handler({ rules: withCookie() });
    const response = await check(request({ headers: { authorization: "Basic dXNlcjpwYXNz", "x-api-key": "vk_robot", cookie: "vsession=vk_alice" } }));
    expect(decider.calls[0][0]).toBe("vk_robot");
    expect(okRemoved(response)).toEqual(["authorization", "x-api-key", "cookie"]);
    expect(okHeaders(response).cookie).toBeUndefined();
  });

  it("an exempt request sheds credentials as well", async () => {
    const { check } = handler({ rules: withCookie() });
    const response = await check(request({ path: "/public/a", headers: { ...bearer("vk_alice"), cookie: "vsession=x; lang=en" } }));
    expect(okRemoved(response)).toEqual(["x-verdict-principal", "x-verdict-tenant", "x-verdict-roles", "authorization"]);
    expect(okHeaders(response).cookie).toBe("lang=en");
  });

  it.each([
    ["two session cookies in one header", "vsession=vk_alice; vsession=vk_robot"],
    ["two cookie headers joined by Envoy", "vsession=vk_alice, theme=dark, vsession=vk_robot"],
    ["the same value twice", "vsession=vk_alice; vsession=vk_alice"],
  ])("refuses %s (400), whichever credential is used", async (_name, cookie) => {
    const { check, decider } = handler({ rules: withCookie() });
    for (const headers of [{ cookie }, { ...bearer("vk_alice"), cookie }]) {
      const d = denial(await check(request({ headers })));
      expect([d.grpc, d.http, d.body.reason, d.body.message]).toEqual([3, 400, "INVALID_REQUEST", "the vsession cookie is sent more than once"]);
    }
    expect(decider.calls).toHaveLength(0);
  });

  it("stripUpstream: used strips only the credential that was used; none and false strip nothing", async () => {
    const headers = { ...bearer("vk_alice"), "x-api-key": "vk_robot", cookie: "theme=dark; vsession=vk_robot" };
    const used = await handler({ rules: withCookie(", stripUpstream: used") }).check(request({ headers }));
    expect(okRemoved(used)).toEqual(["authorization"]);
    expect(okHeaders(used).cookie).toBeUndefined();
    for (const extra of [", stripUpstream: none", ", stripUpstream: false"]) {
      const kept = await handler({ rules: withCookie(extra) }).check(request({ headers }));
      expect(okRemoved(kept)).toEqual([]);
      expect(okHeaders(kept).cookie).toBeUndefined();
    }
    const all = await handler({ rules: withCookie(", stripUpstream: true") }).check(request({ headers }));
    expect(okRemoved(all)).toEqual(["authorization", "x-api-key"]);
  });
});
