/**
 * Fuzzes the ext_authz path (src/api/envoy/wire.ts, request-path.ts, ext-authz.ts) with seeded
 * mutations (fast-check, fixed seeds, a few seconds): byte mutations of real CheckRequests, decoded
 * in process against protobuf-es and sent to a real server, and paths built from the pieces that
 * make upstreams disagree (`%2f`, `..`, `\`, `;`, `//`, `%00`, overlong UTF-8, double encoding).
 * Nothing is allowed unless every way an upstream may read the path is allowed by the policy,
 * nothing answers INTERNAL, nothing crashes.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import fc from "fast-check";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CheckRequest, CheckRequestSchema, type CheckResponse, CheckResponseSchema } from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { createExtAuthzHandler } from "../../src/api/envoy/ext-authz.js";
import { headerNamesRead } from "../../src/api/envoy/request.js";
import { parseRules } from "../../src/api/envoy/rules/parse.js";
import { decodeCheckRequest, selectHeaders } from "../../src/api/envoy/wire.js";
import { WireError } from "../../src/api/protowire.js";
import { deny, type Decision } from "../../src/core/decision.js";
import { mutate, mutation } from "../helpers/byte-mutation.js";
import { grpcClient } from "../helpers/grpc.js";
import { type RawGrpcClient, rawGrpcClient } from "../helpers/raw-grpc.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const ROOT = { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString("base64")}` };
const CHECK = "/envoy.service.auth.v3.Authorization/Check";
const RULES = `
rules:
  - match: GET /v1/orders/*
    action: read:orders
exempt: [/public/**]
credentials:
  cookie: verdict_session
`;
const INTERNAL = 13;
/** Each property stops after this long on a busy machine (seeded: the runs it makes are always the same ones). */
const TIME_LIMIT_MS = 3000;

interface Shape {
  readonly method?: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
}

function envoyRequest({ method = "GET", path, headers = {} }: Shape): Uint8Array {
  return toBinary(
    CheckRequestSchema,
    create(CheckRequestSchema, {
      attributes: {
        request: {
          http: {
            method,
            path,
            host: "api.example.com",
            headers: { ":method": method, ":path": path, ":authority": "api.example.com", accept: "*/*", "user-agent": "curl/8.5.0", ...headers },
          },
        },
      },
    }),
  );
}

/** protobuf-es's reading of the bytes, or undefined when it refuses them. */
function reference(bytes: Uint8Array): CheckRequest | undefined {
  try {
    return fromBinary(CheckRequestSchema, bytes);
  } catch {
    return undefined;
  }
}

/** Every path an upstream may serve for `raw`: as written, URL-resolved, decoded, without `;` parameters, NFKC-folded. */
function upstreamViews(raw: string): string[] {
  const cut = raw.search(/[?#]/);
  const path = cut < 0 ? raw : raw.slice(0, cut);
  const candidates = [path];
  let decoded: string | undefined;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    decoded = undefined;
  }
  if (decoded !== undefined) {
    const slashes = decoded.replace(/\\/g, "/");
    const noParams = slashes
      .split("/")
      .map((segment) => segment.split(";")[0])
      .join("/");
    candidates.push(decoded, slashes, noParams, noParams.normalize("NFKC"));
  }
  const views = new Set<string>();
  for (const candidate of candidates) {
    views.add(candidate);
    try {
      views.add(new URL(candidate.replace(/[?#]/g, "_"), "http://upstream.test").pathname);
    } catch {
      // not a URL path at all: the raw candidate stays
    }
  }
  return [...views];
}

const isExempt = (path: string) => path === "/public" || path.startsWith("/public/");
const isOrder = (path: string) => /^\/v1\/orders\/[^/]+$/.test(path);

/** What the policy looks at in a request. */
interface Seen {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly contextExtensions: Readonly<Record<string, string>>;
}

/**
 * Every reading of the bytes: protobuf-es's (when it accepts them; it ignores wire types of known
 * fields and rejects invalid UTF-8, which Envoy may send in header values) and Verdict's own full
 * decode (when it accepts them).
 */
function readings(bytes: Uint8Array): Seen[] {
  const out: Seen[] = [];
  const theirs = reference(bytes)?.attributes;
  if (theirs?.request?.http !== undefined) out.push({ ...theirs.request.http, contextExtensions: theirs.contextExtensions });
  try {
    const ours = decodeCheckRequest(bytes).attributes;
    if (ours?.request?.http !== undefined) out.push({ ...ours.request.http, contextExtensions: ours.contextExtensions });
  } catch {
    // Verdict refuses these bytes: it allows nothing for them either
  }
  return out;
}

/** The policy, independently of Verdict: exempt for every reading, or alice's key reading an order in acme. */
function mayBeAllowed(request: Seen, key: string): boolean {
  const headers = request.headers;
  const views = upstreamViews(request.path || headers[":path"] || "");
  if (views.every(isExempt)) return true;
  const bearer = /^bearer (.*)$/is.exec(headers.authorization ?? "")?.[1]?.trim();
  const cookies = (headers.cookie ?? "").split(/[;,]/).map((c) => c.trim());
  const credential = bearer ?? headers["x-api-key"]?.trim() ?? cookies.find((c) => c.startsWith("verdict_session="))?.slice(16);
  const tenant = request.contextExtensions["verdict.tenant"] || headers["x-tenant-id"]?.trim();
  const method = request.method || headers[":method"];
  const action = request.contextExtensions["verdict.action"] ?? (method === "GET" && views.every(isOrder) ? "read:orders" : undefined);
  return credential === key && tenant === "acme" && action === "read:orders";
}

/** A decider that allows exactly the policy above. */
const fakeDecider = (key: string) => ({
  check(credential: string, action: string, tenant: string): Decision {
    if (credential === key && action === "read:orders" && tenant === "acme") {
      return { allowed: true, reason: "ALLOWED", message: "", principal: { kind: "api_key", userId: "u-alice", username: "alice", keyId: "k1", roles: [], tenant }, version: 1 };
    }
    return deny("FORBIDDEN", "not allowed", 1);
  },
});

/** Path pieces that make upstreams read a path differently, and plain ones. */
const piece = fc.constantFrom(
  "public", "v1", "orders", "admin", "42", "a..b", ".well", "caf%C3%A9", "4%32",
  "..", ".", "", "%2e%2e", "%2E", ".%2e", "%2f", "%2F", "%5c", "%5C", "\\", ";", "..;", ";x=1", "%3b", "%252f", "%252e%252e",
  "%c0%af", "%c0%ae%c0%ae", "%e2%80%a5", "%ef%bc%8f", "%00", "%0a", "%", "%zz", "%3f", "%23", "?q=../x", "#frag", "%20",
);
const craftedPath = fc.array(fc.array(piece, { minLength: 1, maxLength: 3 }).map((parts) => parts.join("")), { minLength: 1, maxLength: 6 }).map((segments) => `/${segments.join("/")}`);

const KEY = "vk_test_alice_0123456789";
const SEEDS: Shape[] = [
  { path: "/v1/orders/42", headers: { "x-api-key": KEY, "x-tenant-id": "acme" } },
  { path: "/v1/orders/4%32?x=1", headers: { authorization: `Bearer ${KEY}`, "x-tenant-id": "acme" } },
  { path: "/v1/orders/42", headers: { cookie: `theme=dark; verdict_session=${KEY}`, "x-tenant-id": "acme" } },
  { method: "DELETE", path: "/v1/orders/42", headers: { "x-api-key": KEY, "x-tenant-id": "acme" } },
  { path: "/v1/orders/42", headers: { "x-api-key": KEY, "x-tenant-id": "initech" } },
  { path: "/public/docs/index.html" },
  { path: "/public/..%2fv1%2fadmin" },
];

describe("ext_authz fuzz", () => {
  const rules = parseRules(RULES);
  const selection = selectHeaders(headerNamesRead(rules));

  async function judgeInProcess(bytes: Uint8Array, key: string): Promise<CheckResponse | "invalid"> {
    let view;
    try {
      view = decodeCheckRequest(bytes, selection);
    } catch (error) {
      expect(error).toBeInstanceOf(WireError);
      return "invalid";
    }
    return createExtAuthzHandler({ decider: fakeDecider(key), rules })(view, rules);
  }

  function expectSafe(response: CheckResponse, bytes: Uint8Array, key: string): "allowed" | "denied" {
    const code = response.status?.code ?? -1;
    expect(code, `status ${code} for ${Buffer.from(bytes).toString("hex")}`).not.toBe(INTERNAL);
    if (response.httpResponse.case === "deniedResponse") {
      const body = JSON.parse(response.httpResponse.value.body) as { reason: string };
      expect(body.reason, Buffer.from(bytes).toString("hex")).not.toBe("INTERNAL_ERROR");
      return "denied";
    }
    expect(code).toBe(0);
    const seen = readings(bytes);
    expect(seen.length).toBeGreaterThan(0);
    for (const reading of seen) expect(mayBeAllowed(reading, key), `allowed ${JSON.stringify(reading.path)} ${Buffer.from(bytes).toString("hex")}`).toBe(true);
    return "allowed";
  }

  it("in process: random valid requests decode as protobuf-es reads them", () => {
    const text = fc.string({ unit: "binary", maxLength: 24 });
    fc.assert(
      fc.property(text, text, fc.dictionary(text, text, { maxKeys: 6 }), fc.dictionary(text, text, { maxKeys: 3 }), (method, path, headers, contextExtensions) => {
        const bytes = toBinary(CheckRequestSchema, create(CheckRequestSchema, { attributes: { request: { http: { method, path, headers } }, contextExtensions } }));
        const ours = decodeCheckRequest(bytes).attributes;
        expect(ours?.request?.http?.method).toBe(method);
        expect(ours?.request?.http?.path).toBe(path);
        expect({ ...ours?.request?.http?.headers }).toEqual(headers);
        expect({ ...ours?.contextExtensions }).toEqual(contextExtensions);
        const selected = decodeCheckRequest(bytes, selection).attributes?.request?.http?.headers ?? {};
        for (const name of headerNamesRead(rules)) expect(selected[name]).toBe(headers[name]);
      }),
      { seed: 1129, numRuns: 1000, interruptAfterTimeLimit: TIME_LIMIT_MS },
    );
  });

  it("in process: nothing a byte mutation of a real request makes is allowed unless the policy allows it, nothing answers INTERNAL", async () => {
    const seeds = SEEDS.map(envoyRequest);
    const seen = { allowed: 0, denied: 0, invalid: 0 };
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...seeds), fc.array(mutation, { minLength: 1, maxLength: 4 }), async (seed, edits) => {
        const bytes = mutate(seed, edits);
        const response = await judgeInProcess(bytes, KEY);
        if (response === "invalid") seen.invalid++;
        else seen[expectSafe(response, bytes, KEY)]++;
      }),
      { seed: 20261129, numRuns: 4000, interruptAfterTimeLimit: TIME_LIMIT_MS },
    );
    expect(seen.allowed).toBeGreaterThan(0);
    expect(seen.denied).toBeGreaterThan(0);
    expect(seen.invalid).toBeGreaterThan(0);
  });

  it("in process: crafted paths are allowed only when every upstream reading is allowed", async () => {
    const seen = { allowed: 0, denied: 0 };
    await fc.assert(
      fc.asyncProperty(craftedPath, fc.constantFrom("GET", "DELETE"), fc.boolean(), async (path, method, withKey) => {
        const bytes = envoyRequest({ method, path, headers: withKey ? { "x-api-key": KEY, "x-tenant-id": "acme" } : {} });
        const response = await judgeInProcess(bytes, KEY);
        expect(response).not.toBe("invalid");
        seen[expectSafe(response as CheckResponse, bytes, KEY)]++;
      }),
      { seed: 29112026, numRuns: 3000, interruptAfterTimeLimit: TIME_LIMIT_MS },
    );
    expect(seen.allowed).toBeGreaterThan(0);
    expect(seen.denied).toBeGreaterThan(0);
  });

  describe("through a real server", () => {
    const schema = freshSchema();
    let dir = "";
    let v: Awaited<ReturnType<typeof startTestVerdict>>;
    let raw: RawGrpcClient;
    let key = "";

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), "verdict-ext-authz-fuzz-"));
      await writeFile(join(dir, "rules.yaml"), RULES);
      v = await startTestVerdict({ DATABASE_URL: TEST_DATABASE_URL, VERDICT_EXT_AUTHZ_RULES: join(dir, "rules.yaml") }, schema);
      raw = rawGrpcClient(v.grpcAddress);
      const admin = grpcClient(AdminService, v.grpcAddress);
      try {
        for (const id of ["acme", "initech"]) await admin.createTenant({ id }, ROOT);
        await admin.putRole({ name: "order-reader", permissions: ["read:orders"] }, ROOT);
        await admin.createUser({ username: "alice", password: "alice-password-1" }, ROOT);
        await admin.bindRole({ tenant: "acme", user: "alice", role: "order-reader" }, ROOT);
        key = (await admin.createApiKey({ name: "alice-ci", owner: "alice" }, ROOT)).secret;
      } finally {
        admin.close();
      }
    });
    afterAll(async () => {
      raw?.close();
      await v?.close();
      await dropSchema(schema);
      await rm(dir, { recursive: true, force: true });
    });

    it("answers every mutated request with a decision or INVALID_ARGUMENT, never INTERNAL, and allows nothing the policy does not", async () => {
      const withKey = (shape: Shape): Shape => ({
        ...shape,
        headers: Object.fromEntries(Object.entries(shape.headers ?? {}).map(([k, val]) => [k, val.replace(KEY, key)])),
      });
      const seeds = SEEDS.map((shape) => envoyRequest(withKey(shape)));
      const seen = { allowed: 0, denied: 0, invalid: 0 };
      const send = async (bytes: Uint8Array): Promise<void> => {
        const answer = await raw.unary(CHECK, Buffer.from(bytes));
        if (answer.code === status.INVALID_ARGUMENT) {
          seen.invalid++;
          return;
        }
        expect(answer.code, `${status[answer.code]} ${answer.details} for ${Buffer.from(bytes).toString("hex")}`).toBe(status.OK);
        seen[expectSafe(fromBinary(CheckResponseSchema, answer.response!), bytes, key)]++;
      };
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...seeds), fc.array(mutation, { minLength: 1, maxLength: 4 }), async (seed, edits) => send(mutate(seed, edits))),
        { seed: 11_29_2026, numRuns: 500, interruptAfterTimeLimit: TIME_LIMIT_MS },
      );
      await fc.assert(
        fc.asyncProperty(craftedPath, async (path) => send(envoyRequest({ path, headers: { "x-api-key": key, "x-tenant-id": "acme" } }))),
        { seed: 2026_11_29, numRuns: 300, interruptAfterTimeLimit: TIME_LIMIT_MS },
      );
      expect(seen.allowed).toBeGreaterThan(0);
      expect(seen.denied).toBeGreaterThan(0);
      expect(seen.invalid).toBeGreaterThan(0);
      // The server is alive and still decides correctly.
      const after = fromBinary(CheckResponseSchema, (await raw.unary(CHECK, Buffer.from(seeds[0]))).response!);
      expect(after.status?.code).toBe(0);
    });
  });
});
