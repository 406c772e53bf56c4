import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { CheckRequestSchema, CheckResponseSchema } from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import type { Decision } from "../../src/core/decision.js";
import { createExtAuthzHandler } from "../../src/api/envoy/ext-authz.js";
import { headerNamesRead } from "../../src/api/envoy/request.js";
import { parseRules } from "../../src/api/envoy/rules/parse.js";
import { decodeCheckRequest, encodeCheckResponse, selectHeaders } from "../../src/api/envoy/wire.js";

const path = "/v1/orders/42?expand=items";
const full = create(CheckRequestSchema, {
  attributes: {
    source: { address: { address: { case: "socketAddress", value: { address: "10.0.0.1", portSpecifier: { case: "portValue", value: 5000 } } } }, principal: "spiffe://x" },
    destination: { service: "shop", labels: { app: "shop" } },
    request: {
      time: { seconds: 1700000000n, nanos: 5 },
      http: {
        id: "r1",
        method: "GET",
        path,
        host: "acme.example.com",
        scheme: "https",
        size: -1n,
        protocol: "HTTP/2",
        body: "ignored",
        rawBody: new Uint8Array([1, 2, 3]),
        headers: { ":method": "GET", ":path": path, "x-api-key": "vk_abc", "x-tenant-id": "acme", ["__proto__"]: "p", "": "empty-name", "x-utf8": "zoë 😀", "x-long": `${"a".repeat(100)}é` },
        headerMap: { headers: [{ key: "x-raw", value: "", rawValue: new TextEncoder().encode("é") }, { key: "x-a", value: "1" }] },
      },
    },
    contextExtensions: { "verdict.action": "read:orders", constructor: "c" },
    metadataContext: { filterMetadata: { "envoy.filters.http.jwt_authn": { fields: { sub: { kind: { case: "stringValue", value: "alice" } } } } } },
    routeMetadataContext: { filterMetadata: {} },
    tlsSession: { sni: "acme.example.com" },
  },
});

describe("decodeCheckRequest", () => {
  it("reads what protobuf-es reads for the fields the adapter uses, and skips every other field", () => {
    const bytes = toBinary(CheckRequestSchema, full);
    const ours = decodeCheckRequest(bytes);
    const reference = fromBinary(CheckRequestSchema, bytes);
    const http = ours.attributes!.request!.http!;
    const ref = reference.attributes!.request!.http!;
    expect([http.method, http.path, http.host]).toEqual([ref.method, ref.path, ref.host]);
    // protobuf-es turns a "__proto__" entry into a prototype (dropping it); the codec keeps it as a plain entry.
    expect(Object.entries(http.headers).filter(([k]) => k !== "__proto__").sort()).toEqual(Object.entries(ref.headers).sort());
    expect(http.headerMap!.headers.map((h) => [h.key, h.value, [...h.rawValue]])).toEqual(ref.headerMap!.headers.map((h) => [h.key, h.value, [...h.rawValue]]));
    expect({ ...ours.attributes!.contextExtensions }).toEqual({ ...reference.attributes!.contextExtensions });
  });

  it("keeps header and extension names off Object.prototype", () => {
    const ours = decodeCheckRequest(toBinary(CheckRequestSchema, full));
    const headers = ours.attributes!.request!.http!.headers;
    expect(Object.getPrototypeOf(headers)).toBeNull();
    expect(headers["__proto__"]).toBe("p");
    expect(({} as Record<string, unknown>).p).toBeUndefined();
    expect(Object.getPrototypeOf(ours.attributes!.contextExtensions)).toBeNull();
    expect(ours.attributes!.contextExtensions.toString).toBeUndefined();
  });

  it("leaves absent parts absent, as protobuf-es does", () => {
    expect(decodeCheckRequest(new Uint8Array(0))).toEqual({ attributes: undefined });
    const noHttp = decodeCheckRequest(toBinary(CheckRequestSchema, create(CheckRequestSchema, { attributes: { request: {} } })));
    expect(noHttp.attributes!.request).toEqual({ http: undefined });
  });

  it("with a selection, keeps only the selected headers but counts and measures every one", () => {
    const ours = decodeCheckRequest(toBinary(CheckRequestSchema, full), selectHeaders(["x-api-key", ":path", "x-utf8", "absent"]));
    const http = ours.attributes!.request!.http!;
    expect({ ...http.headers }).toEqual({ "x-api-key": "vk_abc", ":path": path, "x-utf8": "zoë 😀" });
    expect(http.headerStats).toEqual({ count: 8, longestValueBytes: 102 });
    expect({ ...ours.attributes!.contextExtensions }).toEqual({ "verdict.action": "read:orders", constructor: "c" });
  });

  it("throws on truncated or malformed bytes", () => {
    const bytes = toBinary(CheckRequestSchema, full);
    expect(() => decodeCheckRequest(bytes.subarray(0, bytes.length - 3))).toThrow();
    expect(() => decodeCheckRequest(new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]))).toThrow();
  });
});

describe("encodeCheckResponse", () => {
  const principal = { kind: "api_key" as const, userId: "u1", username: "alice", keyId: "k1", tenant: "acme", roles: ["a", "b"] };
  const decisions: Record<string, Decision> = {
    "vk_allow": { allowed: true, reason: "ALLOWED", message: "", principal, version: 1 },
    "vk_deny": { allowed: false, reason: "FORBIDDEN", message: "may not", principal, version: 1 },
    "vk_expired": { allowed: false, reason: "EXPIRED", message: "expired", principal: undefined, version: 1 },
  };
  const check = createExtAuthzHandler({
    decider: { check: (credential) => decisions[credential] },
    rules: parseRules("rules:\n  - match: GET /v1/orders/*\n    action: read:orders\ncredentials:\n  cookie: s\n"),
  });
  const request = (headers: Record<string, string>, p = path) =>
    create(CheckRequestSchema, { attributes: { request: { http: { method: "GET", path: p, headers: { "x-tenant-id": "acme", ...headers } } } } });

  it.each([
    ["allow", request({ "x-api-key": "vk_allow" })],
    ["allow with a rewritten cookie", request({ cookie: "a=1; s=vk_allow" })],
    ["403", request({ "x-api-key": "vk_deny" })],
    ["401 from the decider", request({ "x-api-key": "vk_expired" })],
    ["401 without a credential", request({})],
    ["400 for an empty credential", request({ "x-api-key": " " })],
    ["exempt", request({}, "/healthz")],
  ])("writes what protobuf-es writes: %s", async (_name, req) => {
    const response = await check(req);
    const ours = encodeCheckResponse(response);
    expect(fromBinary(CheckResponseSchema, ours)).toEqual(response);
    expect(Buffer.from(ours).equals(Buffer.from(toBinary(CheckResponseSchema, response)))).toBe(true);
  });

  it("falls back to protobuf-es for fields it does not write itself", () => {
    const response = create(CheckResponseSchema, {
      status: { code: 0, details: [{ typeUrl: "type.googleapis.com/x", value: new Uint8Array([1]) }] },
      httpResponse: { case: "okResponse", value: { queryParametersToSet: [{ key: "a", value: "b" }], headers: [{ header: { key: "k", value: "v" }, append: true }] } },
      dynamicMetadata: { fields: { a: { kind: { case: "numberValue", value: 1 } } } },
    });
    expect(fromBinary(CheckResponseSchema, encodeCheckResponse(response))).toEqual(response);
    const errorResponse = create(CheckResponseSchema, { status: { code: 14 }, httpResponse: { case: "errorResponse", value: { status: { code: 503 }, body: "x" } } });
    expect(fromBinary(CheckResponseSchema, encodeCheckResponse(errorResponse))).toEqual(errorResponse);
  });
});

describe("the selective decoder gives the same answers as protobuf-es", () => {
  const rules = parseRules(
    "rules:\n  - match: GET /v1/orders/*\n    action: read:orders\ntenant:\n  from: [{header: x-org}, {host: \"{tenant}.example.com\"}]\ncredentials:\n  cookie: s\nlimits:\n  maxHeaders: 12\n  maxHeaderValueLength: 40\n",
  );
  const principal = { kind: "api_key" as const, userId: "u1", username: "alice", keyId: "k1", tenant: "acme", roles: ["a"] };
  let n = 0;
  const check = createExtAuthzHandler({
    decider: { check: (credential, action, tenant) => ({ allowed: credential === "vk_ok" && tenant === "acme", reason: credential === "vk_ok" && tenant === "acme" ? "ALLOWED" : "FORBIDDEN", message: `${action}`, principal, version: 1 }) },
    rules,
    newDecisionId: () => `d-${++n}`,
  });
  const selection = selectHeaders(headerNamesRead(rules));
  const noise = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`x-noise-${i}`, "n".repeat(i * 5)]));
  it.each([
    ["api key and tenant header", { "x-api-key": "vk_ok", "x-org": "acme", ...noise }, 0],
    ["bearer and host tenant", { authorization: "Bearer vk_ok", ":authority": "acme.example.com", ...noise }, 0],
    ["cookie", { cookie: "a=1; s=vk_ok", "x-org": "acme" }, 0],
    ["wrong tenant", { "x-api-key": "vk_ok", "x-org": "globex" }, 7],
    ["too many headers", { "x-api-key": "vk_ok", "x-org": "acme", ...noise, "x-more": "1", "x-more-2": "2", "x-more-3": "3", "x-more-4": "4" }, 3],
    ["a long unread header (in bytes)", { "x-api-key": "vk_ok", "x-org": "acme", "x-unread": "é".repeat(21) }, 3],
  ])("%s", async (_name, headers, code) => {
    const request = create(CheckRequestSchema, { attributes: { request: { http: { method: "GET", path: "/v1/orders/1", headers: { ":path": "/v1/orders/1", ...headers } } } } });
    n = 0;
    const reference = await check(fromBinary(CheckRequestSchema, toBinary(CheckRequestSchema, request)));
    n = 0;
    const ours = await check(decodeCheckRequest(toBinary(CheckRequestSchema, request), selection), rules);
    expect(ours).toEqual(reference);
    expect(ours.status!.code).toBe(code);
  });
});
