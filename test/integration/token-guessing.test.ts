/**
 * Unauthenticated callers against two real replicas sharing the machine's Postgres and Redis:
 * made-up session secrets (well-formed random refresh tokens, sign-in states) cost a store lookup
 * each, so a client address may have only VERDICT_LOGIN_MAX_ATTEMPTS_PER_ADDRESS of them fail per
 * VERDICT_LOGIN_WINDOW_SECONDS, counted for the whole fleet in Redis; beyond that the caller is
 * refused before any lookup (RESOURCE_EXHAUSTED, or 429 with Retry-After), while a refresh that
 * works gives its attempt back and other addresses keep their own budgets. Also: a failing OIDC
 * discovery is retried once per interval, not once per /authorize.
 *
 * The store is the real Postgres store, wrapped to count the lookups that made-up secrets reach.
 */
import { status } from "@grpc/grpc-js";
import { randomBytes } from "node:crypto";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { AuthService } from "../../gen/verdict/v1/auth_pb.js";
import { DecisionService } from "../../gen/verdict/v1/decision_pb.js";
import { Reason } from "../../gen/verdict/v1/types_pb.js";
import { openStore } from "../../src/store/index.js";
import type { Store } from "../../src/store/store.js";
import { type TestClient, grpcClient, grpcError } from "../helpers/grpc.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, TEST_REDIS_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const BUDGET = 5;
const ROOT = { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString("base64")}` };
const REFRESH_COOKIE = "verdict_session_refresh";
const FLOW_COOKIE = "verdict_session_flow";

type Verdict = Awaited<ReturnType<typeof startTestVerdict>>;
type Lookup = "refreshSession" | "findSessionByRefreshHash" | "takePendingAuthorization";

/** A well-formed refresh token nobody was given. */
const madeUp = () => `vrt_${randomBytes(32).toString("base64url")}`;
/** As the trusted proxy in front (loopback) says the client is `address`. */
const from = (address: string) => ({ "x-forwarded-for": address });

/** The real Postgres store, counting the lookups a made-up secret can reach. */
async function countingStore(schema: string, counts: Map<Lookup, number>): Promise<Store> {
  const store = await openStore({ databaseUrl: TEST_DATABASE_URL, dataDir: "", schema });
  const count = <T extends object>(target: T, names: readonly Lookup[]): T =>
    new Proxy(target, {
      get(t, name, receiver) {
        const value: unknown = Reflect.get(t, name, receiver);
        if (typeof value !== "function") return value;
        if (!names.includes(name as Lookup)) return value.bind(t);
        return (...args: unknown[]) => {
          counts.set(name as Lookup, (counts.get(name as Lookup) ?? 0) + 1);
          return value.apply(t, args);
        };
      },
    });
  const identities = count(store.identities, ["takePendingAuthorization"]);
  const counted = count(store, ["refreshSession", "findSessionByRefreshHash"]);
  return new Proxy(counted, { get: (t, name, receiver) => (name === "identities" ? identities : Reflect.get(t, name, receiver)) });
}

describe("made-up session secrets from one address: bounded store work, shared by the fleet", () => {
  const schema = freshSchema();
  const counts = new Map<Lookup, number>();
  let discoveryRequests = 0;
  let issuer: Server;
  let a: Verdict;
  let b: Verdict;
  let authA: TestClient<typeof AuthService>;
  let authB: TestClient<typeof AuthService>;
  let admin: TestClient<typeof AdminService>;
  let decision: TestClient<typeof DecisionService>;

  const lookups = (name: Lookup) => counts.get(name) ?? 0;
  const post = (v: Verdict, path: string, headers: Record<string, string>, body?: unknown) =>
    fetch(`${v.httpBase}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
  const metric = async (v: Verdict, pattern: RegExp): Promise<number> => Number(pattern.exec(await (await fetch(`${v.httpBase}/metrics`)).text())?.[1] ?? 0);
  const login = async (username: string, address: string) => (await authA.login({ username, password: `${username}-password-1` }, from(address))).tokens!;

  beforeAll(async () => {
    // An identity provider whose discovery fails: it counts how often Verdict asks.
    issuer = createServer((req, res) => {
      if (req.url?.startsWith("/.well-known/openid-configuration")) discoveryRequests++;
      res.writeHead(503, { "content-type": "text/plain" }).end("down for maintenance\n");
    });
    await new Promise<void>((resolve) => issuer.listen(0, "127.0.0.1", resolve));
    const issuerUrl = `http://127.0.0.1:${(issuer.address() as AddressInfo).port}`;
    const env = {
      DATABASE_URL: TEST_DATABASE_URL,
      REDIS_URL: TEST_REDIS_URL,
      VERDICT_REDIS_CHANNEL: `verdict:it:${schema}`,
      VERDICT_RATE_LIMIT_REDIS_PREFIX: `verdict:it:${schema}:rl`,
      VERDICT_LOGIN_MAX_ATTEMPTS_PER_ADDRESS: String(BUDGET),
      // Loopback is the proxy in front: X-Forwarded-For (gRPC metadata too) names the client.
      VERDICT_TRUSTED_PROXIES: "127.0.0.1",
      VERDICT_PUBLIC_URL: "http://127.0.0.1:1",
      OP_CLIENT_SECRET: "op-client-secret",
      VERDICT_OAUTH_PROVIDERS: JSON.stringify([{ kind: "oidc", issuer: issuerUrl, clientId: "verdict", clientSecretEnv: "OP_CLIENT_SECRET", id: "op" }]),
    };
    a = await startTestVerdict(env, schema, undefined, { store: await countingStore(schema, counts) });
    b = await startTestVerdict(env, schema, undefined, { store: await countingStore(schema, counts) });
    authA = grpcClient(AuthService, a.grpcAddress);
    authB = grpcClient(AuthService, b.grpcAddress);
    admin = grpcClient(AdminService, a.grpcAddress);
    decision = grpcClient(DecisionService, a.grpcAddress);
    await admin.createTenant({ id: "acme" }, ROOT);
    for (const name of ["alice", "bob"]) {
      await admin.createUser({ username: name, password: `${name}-password-1` }, ROOT);
      await admin.bindRole({ tenant: "acme", user: name, role: "READ" }, ROOT);
    }
  });

  afterAll(async () => {
    for (const c of [authA, authB, admin, decision]) c?.close();
    await b?.close();
    await a?.close();
    await new Promise((resolve) => issuer?.close(resolve));
    await dropSchema(schema);
  });

  it("random refresh tokens from one address: the budget reaches the store (on either replica), then RESOURCE_EXHAUSTED / 429 before any lookup", async () => {
    const attacker = "203.0.113.10";
    const before = lookups("refreshSession");
    // Three over gRPC on A, two over Connect JSON on B: one budget for the address, kept in Redis.
    for (let i = 0; i < 3; i++) expect((await grpcError(authA.refresh({ refreshToken: madeUp() }, from(attacker)))).code).toBe(status.UNAUTHENTICATED);
    for (let i = 0; i < 2; i++) expect((await post(b, "/verdict.v1.AuthService/Refresh", from(attacker), { refreshToken: madeUp() })).status).toBe(401);
    expect(lookups("refreshSession") - before).toBe(BUDGET);

    for (let i = 0; i < 20; i++) {
      const refused = await grpcError(authA.refresh({ refreshToken: madeUp() }, from(attacker)));
      expect(refused.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(refused.details).toMatch(/^too many failed refresh tokens, sign-outs or sign-ins from this address; try again in \d+ s$/);
    }
    const overConnect = await post(b, "/verdict.v1.AuthService/Refresh", from(attacker), { refreshToken: madeUp() });
    expect([overConnect.status, ((await overConnect.json()) as { code: string }).code]).toEqual([429, "resource_exhausted"]);
    // The browser's refresh cookie: 429 with Retry-After and a reason, the cookies kept.
    const cookie = await post(a, "/oauth2/refresh", { ...from(attacker), cookie: `${REFRESH_COOKIE}=${madeUp()}` });
    expect(cookie.status).toBe(429);
    const retryAfter = Number(cookie.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(300);
    expect(cookie.headers.get("set-cookie")).toBeNull();
    expect(await cookie.json()).toEqual({ code: "rate_limited", message: expect.stringMatching(/^too many failed refresh tokens, sign-outs or sign-ins from this address; try again in \d+ s$/) });
    expect(lookups("refreshSession") - before).toBe(BUDGET);

    expect(await metric(a, /verdict_token_attempts_total\{use="refresh",outcome="rate_limited"\} (\d+)/)).toBe(21);
    expect(await metric(b, /verdict_token_attempts_total\{use="refresh",outcome="failure"\} (\d+)/)).toBe(2);
    expect(await metric(a, /verdict_session_cookie_requests_total\{route="refresh",outcome="rate_limited"\} (\d+)/)).toBe(1);
  });

  it("a refresh that works gives its attempt back, and works from another address while one is refused", async () => {
    // Twice the budget of good refreshes from one address, one after the other: none is refused.
    let pair = await login("alice", "198.51.100.20");
    for (let i = 0; i < 2 * BUDGET; i++) pair = (await authA.refresh({ refreshToken: pair.refreshToken }, from("198.51.100.20"))).tokens!;
    // An address whose budget is spent is refused, even a good token (it cannot be told apart before the lookup) ...
    const spent = "203.0.113.11";
    for (let i = 0; i < BUDGET; i++) await grpcError(authB.refresh({ refreshToken: madeUp() }, from(spent)));
    expect((await grpcError(authA.refresh({ refreshToken: pair.refreshToken }, from(spent)))).code).toBe(status.RESOURCE_EXHAUSTED);
    // ... the same token from the owner's address still works, and its access token is good.
    const fresh = (await authA.refresh({ refreshToken: pair.refreshToken }, from("198.51.100.20"))).tokens!;
    expect((await decision.check({ credential: fresh.accessToken, action: "read:orders", tenant: "acme" })).allowed).toBe(true);
    const cookie = await post(b, "/oauth2/refresh", { ...from("198.51.100.21"), cookie: `${REFRESH_COOKIE}=${fresh.refreshToken}` });
    expect(cookie.status).toBe(200);
  });

  it("concurrent guesses cannot all start before the first failure is counted; an IPv6 client counts by its /64", async () => {
    const before = lookups("refreshSession");
    const codes = await Promise.all(Array.from({ length: 40 }, (_, i) => grpcError((i % 2 ? authA : authB).refresh({ refreshToken: madeUp() }, from("203.0.113.12"))).then((e) => e.code)));
    expect(codes.filter((c) => c === status.UNAUTHENTICATED)).toHaveLength(BUDGET);
    expect(codes.filter((c) => c === status.RESOURCE_EXHAUSTED)).toHaveLength(40 - BUDGET);
    expect(lookups("refreshSession") - before).toBe(BUDGET);

    for (let i = 1; i <= BUDGET; i++) await grpcError(authA.refresh({ refreshToken: madeUp() }, from(`2001:db8:9:1::${i}`)));
    expect((await grpcError(authA.refresh({ refreshToken: madeUp() }, from("2001:db8:9:1:ffff::1")))).code).toBe(status.RESOURCE_EXHAUSTED);
    expect((await grpcError(authA.refresh({ refreshToken: madeUp() }, from("2001:db8:9:2::1")))).code).toBe(status.UNAUTHENTICATED);
  });

  it("signing out with a made-up refresh token (Logout, POST /oauth2/logout) counts the same way; a real sign-out still works", async () => {
    const attacker = "203.0.113.13";
    const before = lookups("findSessionByRefreshHash");
    for (let i = 0; i < 3; i++) expect((await grpcError(authA.logout({ refreshToken: madeUp() }, from(attacker)))).code).toBe(status.UNAUTHENTICATED);
    // A signed-out page's sign-out with a stale refresh cookie is a 204 as before, but counted.
    for (let i = 0; i < 2; i++) expect((await post(b, "/oauth2/logout", { ...from(attacker), cookie: `${REFRESH_COOKIE}=${madeUp()}` })).status).toBe(204);
    expect(lookups("findSessionByRefreshHash") - before).toBe(BUDGET);
    for (let i = 0; i < 5; i++) expect((await grpcError(authB.logout({ refreshToken: madeUp() }, from(attacker)))).code).toBe(status.RESOURCE_EXHAUSTED);
    const page = await post(a, "/oauth2/logout", { ...from(attacker), cookie: `${REFRESH_COOKIE}=${madeUp()}` });
    expect(page.status).toBe(429);
    expect(Number(page.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(((await page.json()) as { code: string }).code).toBe("rate_limited");
    expect(lookups("findSessionByRefreshHash") - before).toBe(BUDGET);

    const bob = await login("bob", "198.51.100.30");
    const out = await authB.logout({ refreshToken: bob.refreshToken }, from("198.51.100.30"));
    expect((await decision.check({ credential: bob.accessToken, action: "read:orders", tenant: "acme", minVersion: out.version })).reason).toBe(Reason.REVOKED);
    // Signing out of a session already ended is answered as before, by refresh or access token, but counted as a failure.
    const failures = () => metric(b, /verdict_token_attempts_total\{use="logout",outcome="failure"\} (\d+)/);
    const failed = await failures();
    await authB.logout({ refreshToken: bob.refreshToken }, from("198.51.100.30"));
    await authB.logout({}, { ...from("198.51.100.30"), authorization: `Bearer ${bob.accessToken}` });
    expect(await failures()).toBe(failed + 2);
    expect(await metric(b, /verdict_token_attempts_total\{use="logout",outcome="rate_limited"\} (\d+)/)).toBe(5);
  });

  it("sign-in callbacks with made-up states: the budget reaches the store, then 429", async () => {
    const attacker = "203.0.113.14";
    const before = lookups("takePendingAuthorization");
    const callback = (v: Verdict) => {
      const state = randomBytes(32).toString("base64url");
      return fetch(`${v.httpBase}/oauth2/op/callback?state=${state}&code=made-up`, { headers: { ...from(attacker), cookie: `${FLOW_COOKIE}=${state}` }, redirect: "manual" });
    };
    for (let i = 0; i < BUDGET; i++) {
      const page = await callback(i % 2 ? a : b);
      expect([page.status, ((await page.json()) as { code: string }).code]).toEqual([400, "state_invalid"]);
    }
    expect(lookups("takePendingAuthorization") - before).toBe(BUDGET);
    for (let i = 0; i < 10; i++) {
      const page = await callback(a);
      expect(page.status).toBe(429);
      expect(Number(page.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(((await page.json()) as { code: string }).code).toBe("rate_limited");
    }
    expect(lookups("takePendingAuthorization") - before).toBe(BUDGET);
    expect(await metric(a, /verdict_oauth_sign_ins_total\{provider="op",outcome="rate_limited"\} (\d+)/)).toBe(10);
  });

  it("a failing discovery is asked again once per interval, not once per /authorize", async () => {
    const before = discoveryRequests;
    let toldToWait = 0;
    for (let i = 0; i < 20; i++) {
      const page = await fetch(`${(i % 2 ? a : b).httpBase}/oauth2/op/authorize`, { headers: from(`192.0.2.${i + 1}`), redirect: "manual" });
      expect(page.status).toBe(502);
      expect(((await page.json()) as { code: string }).code).toBe("provider_unusable");
      if (Number(page.headers.get("retry-after")) >= 1) toldToWait++;
    }
    // One request to the provider per replica (each keeps its own interval), whatever the number of sign-ins.
    expect(discoveryRequests - before).toBeLessThanOrEqual(2);
    expect(toldToWait).toBeGreaterThanOrEqual(18);
  });
});
