/**
 * The tokens story against real servers over gRPC (and HTTP for JWKS and Connect JSON) on the
 * machine's Postgres: Login / Refresh / Logout, revocation at the next Check on two replicas, key
 * rotation, HS256, external OIDC through a local JWKS server, and every bad-token reason code.
 */
import { status } from "@grpc/grpc-js";
import { type JWK, SignJWT, exportJWK, exportSPKI, generateKeyPair } from "jose";
import { createHash, createHmac } from "node:crypto";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { AuthService } from "../../gen/verdict/v1/auth_pb.js";
import { DecisionService } from "../../gen/verdict/v1/decision_pb.js";
import { Reason } from "../../gen/verdict/v1/types_pb.js";
import { type TestClient, grpcClient, grpcError } from "../helpers/grpc.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const basic = (user: string, pass: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}` });
const ROOT = basic("root", ROOT_PASSWORD);
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const IDP = "https://idp.test";
const KEK = "a1".repeat(32);
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const header = (token: string) => JSON.parse(Buffer.from(token.split(".")[0], "base64url").toString()) as Record<string, string>;

type Verdict = Awaited<ReturnType<typeof startTestVerdict>>;
/** Rounds of the wrong-user / wrong-password timing comparison (an odd number: one median). */
const ROUNDS = 19;

describe("tokens: login, refresh, logout, rotation, OIDC, bad tokens", () => {
  const schema = freshSchema();
  let v: Verdict;
  let replica: Verdict;
  let admin: TestClient<typeof AdminService>;
  let auth: TestClient<typeof AuthService>;
  let decision: TestClient<typeof DecisionService>;
  let decision2: TestClient<typeof DecisionService>;
  let jwksServer: Server;
  let idpKey: Awaited<ReturnType<typeof generateKeyPair>>["privateKey"];
  let idpPublicPem = "";

  const check = (credential: string, tenant = "acme", action = "read:orders", minVersion = 0n, client = decision) =>
    client.check({ credential, action, tenant, minVersion });
  const login = (username: string, password: string, tenant = "acme") => auth.login({ username, password, tenant }).then((r) => r.tokens!);
  const idpToken = (claims: Record<string, unknown>, options: { kid?: string; iss?: string; aud?: string } = {}) => {
    const nowS = Math.floor(Date.now() / 1000);
    const payload = { iss: options.iss ?? IDP, aud: options.aud ?? "verdict-api", iat: nowS, exp: nowS + 600, ...claims };
    return new SignJWT(payload).setProtectedHeader({ alg: "RS256", kid: options.kid ?? "idp-1" }).sign(idpKey);
  };

  beforeAll(async () => {
    const pair = await generateKeyPair("RS256", { extractable: true });
    idpKey = pair.privateKey;
    idpPublicPem = await exportSPKI(pair.publicKey);
    const jwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: "idp-1", alg: "RS256", use: "sig" };
    jwksServer = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, "127.0.0.1", resolve));
    const jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks`;
    const env = {
      DATABASE_URL: TEST_DATABASE_URL,
      VERDICT_POLL_INTERVAL_MS: "50",
      // Read-your-writes checks below wait for the second replica instead of answering STALE when
      // this busy machine delays it (the STALE answer itself is tested in replicas.test.ts).
      VERDICT_MIN_VERSION_WAIT_MS: "5000",
      VERDICT_KEY_ENCRYPTION_KEY: KEK,
      VERDICT_LOGIN_MAX_ATTEMPTS: "5",
      // The timing test below fails 2 * ROUNDS + 5 logins from this one address.
      VERDICT_LOGIN_MAX_ATTEMPTS_PER_ADDRESS: String(4 * ROUNDS),
      VERDICT_OIDC_ISSUERS: JSON.stringify([
        { issuer: IDP, audience: "verdict-api", jwksUrl, algorithms: ["RS256"], cooldownSeconds: 1, createUsers: true, defaultTenant: "acme", defaultRole: "READ" },
      ]),
    };
    v = await startTestVerdict(env, schema);
    replica = await startTestVerdict(env, schema);
    admin = grpcClient(AdminService, v.grpcAddress);
    auth = grpcClient(AuthService, v.grpcAddress);
    decision = grpcClient(DecisionService, v.grpcAddress);
    decision2 = grpcClient(DecisionService, replica.grpcAddress);
    await admin.createTenant({ id: "acme" }, ROOT);
    await admin.createTenant({ id: "other" }, ROOT);
    await admin.putRole({ name: "order-reader", permissions: ["read:orders"] }, ROOT);
    for (const name of ["alice", "bob", "carol"]) {
      await admin.createUser({ username: name, password: `${name}-password-1` }, ROOT);
      await admin.bindRole({ tenant: "acme", user: name, role: "order-reader" }, ROOT);
    }
  });
  afterAll(async () => {
    for (const c of [admin, auth, decision, decision2]) c?.close();
    await replica?.close();
    await v?.close();
    await new Promise((resolve) => jwksServer?.close(resolve));
    await dropSchema(schema);
  });

  it("logs in; Check accepts the access token; a tenant-scoped token is WRONG_TENANT elsewhere", async () => {
    const t = await login("alice", "alice-password-1");
    expect(t.tokenType).toBe("Bearer");
    expect(Number(t.expiresIn)).toBeGreaterThan(3500);
    expect(Number(t.refreshExpiresIn)).toBe(30 * 86_400);
    expect(t.refreshToken).toMatch(/^vrt_/);
    expect(header(t.accessToken)).toMatchObject({ alg: "EdDSA", typ: "JWT" });
    const ok = await check(t.accessToken);
    expect(ok.allowed).toBe(true);
    expect(ok.principal).toMatchObject({ username: "alice", tenant: "acme", roles: ["order-reader"] });
    expect((await check(t.accessToken, "acme", "write:orders")).reason).toBe(Reason.FORBIDDEN);
    expect((await check(t.accessToken, "other")).reason).toBe(Reason.WRONG_TENANT);
    const unscoped = await login("alice", "alice-password-1", "");
    expect((await check(unscoped.accessToken)).allowed).toBe(true);
    expect((await check(unscoped.accessToken, "other")).reason).toBe(Reason.WRONG_TENANT);
    expect((await grpcError(login("alice", "alice-password-1", "other"))).code).toBe(status.PERMISSION_DENIED);
  });

  it("stores refresh tokens hashed and private keys sealed", async () => {
    const t = await login("bob", "bob-password-1");
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    try {
      const tokens = await client.query<{ token_hash: string }>(`SELECT token_hash FROM "${schema}".refresh_tokens`);
      const stored = tokens.rows.map((r) => r.token_hash);
      expect(stored).toContain(createHash("sha256").update(t.refreshToken).digest("hex"));
      expect(stored.join()).not.toContain(t.refreshToken.slice(4));
      const keys = await client.query<{ private_key: string; encrypted: boolean }>(`SELECT private_key, encrypted FROM "${schema}".signing_keys`);
      expect(keys.rows.length).toBeGreaterThan(0);
      for (const k of keys.rows) {
        expect(k.encrypted).toBe(true);
        expect(k.private_key).not.toContain("PRIVATE KEY");
      }
    } finally {
      await client.end();
    }
  });

  it("answers wrong username and wrong password alike, then rate-limits the pair", async () => {
    const timed = async (username: string, password: string) => {
      const started = performance.now();
      const err = await grpcError(auth.login({ username, password, tenant: "" }));
      return { err, ms: performance.now() - started };
    };
    // Wrong passwords of several users, each staying under its pair limit (5), so that enough
    // rounds are measured for the load of this busy machine not to decide the ratio.
    const victims = Array.from({ length: 5 }, (_, i) => `timing-${i}`);
    for (const name of victims) await admin.createUser({ username: name, password: `${name}-password-1` }, ROOT);
    const ratios: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      // Side by side, in alternating order: a load spike hits both halves of a round alike.
      const wrongUser = () => timed(`nobody-${i}`, "timing-0-password-1");
      const wrongPassword = () => timed(victims[i % victims.length], `not-the-password-${i}`);
      const u = i % 2 === 0 ? await wrongUser() : undefined;
      const p = await wrongPassword();
      const both = { u: u ?? (await wrongUser()), p };
      expect(both.u.err.code).toBe(status.UNAUTHENTICATED);
      expect(both.p.err.code).toBe(status.UNAUTHENTICATED);
      expect(both.u.err.details).toBe(both.p.err.details);
      ratios.push(both.u.ms / both.p.ms);
    }
    const ratio = ratios.sort((a, b) => a - b)[Math.floor(ratios.length / 2)];
    // A known user skipping argon2 (or an unknown one skipping the dummy hash) is a ratio far below 0.33 or above 3.
    expect(ratio, `median of ${ROUNDS} per-round ratios wrong-user / wrong-password`).toBeGreaterThan(0.33);
    expect(ratio, `median of ${ROUNDS} per-round ratios wrong-user / wrong-password`).toBeLessThan(3);
    // Five failures for (carol, this peer): even the right password is refused now.
    for (let i = 0; i < 5; i++) expect((await grpcError(login("carol", `not-carols-password-${i}`))).code).toBe(status.UNAUTHENTICATED);
    const limited = await grpcError(login("carol", "carol-password-1"));
    expect(limited.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(limited.details).not.toContain("carol-password-1");
  });

  it("refuses a password shorter than 12 characters at creation", async () => {
    expect((await grpcError(admin.createUser({ username: "shorty", password: "elevenchars" }, ROOT))).code).toBe(status.INVALID_ARGUMENT);
  });

  it("rotates refresh tokens; reusing a used one revokes the whole family at the next Check", async () => {
    const first = await login("alice", "alice-password-1");
    const second = (await auth.refresh({ refreshToken: first.refreshToken })).tokens!;
    expect(second.sessionId).toBe(first.sessionId);
    expect(second.refreshToken).not.toBe(first.refreshToken);
    const third = (await auth.refresh({ refreshToken: second.refreshToken })).tokens!;
    expect((await check(third.accessToken)).allowed).toBe(true);
    const reuse = await grpcError(auth.refresh({ refreshToken: first.refreshToken }));
    expect(reuse.code).toBe(status.UNAUTHENTICATED);
    expect(reuse.details).toContain("already used");
    for (const t of [first, second, third]) expect((await check(t.accessToken)).reason).toBe(Reason.REVOKED);
    expect((await grpcError(auth.refresh({ refreshToken: third.refreshToken }))).code).toBe(status.UNAUTHENTICATED);
    expect((await grpcError(auth.refresh({ refreshToken: "vrt_" + "A".repeat(43) }))).code).toBe(status.UNAUTHENTICATED);
  });

  it("logout revokes the session at the next Check on another replica", async () => {
    const t = await login("alice", "alice-password-1");
    expect((await check(t.accessToken, "acme", "read:orders", t.version, decision2)).allowed).toBe(true);
    const { version } = await auth.logout({ refreshToken: t.refreshToken });
    expect((await check(t.accessToken)).reason).toBe(Reason.REVOKED);
    expect((await check(t.accessToken, "acme", "read:orders", version, decision2)).reason).toBe(Reason.REVOKED);
    expect((await grpcError(auth.refresh({ refreshToken: t.refreshToken }))).code).toBe(status.UNAUTHENTICATED);
    const byAccess = await login("alice", "alice-password-1");
    const out = await auth.logout({}, bearer(byAccess.accessToken));
    expect((await check(byAccess.accessToken, "acme", "read:orders", out.version, decision2)).reason).toBe(Reason.REVOKED);
  });

  it("denies a disabled or deleted user's token at the next Check", async () => {
    const t = await login("bob", "bob-password-1");
    expect((await check(t.accessToken, "acme", "read:orders", 0n, decision2)).allowed).toBe(true);
    const disabled = await admin.setUserDisabled({ user: "bob", disabled: true }, ROOT);
    // Disabling revokes the user's sessions: their tokens stay dead after re-enabling.
    expect((await check(t.accessToken)).reason).toBe(Reason.REVOKED);
    expect((await check(t.accessToken, "acme", "read:orders", disabled.version, decision2)).reason).toBe(Reason.REVOKED);
    expect((await grpcError(auth.refresh({ refreshToken: t.refreshToken }))).code).toBe(status.UNAUTHENTICATED);
    expect((await grpcError(login("bob", "bob-password-1"))).code).toBe(status.UNAUTHENTICATED);
    await admin.setUserDisabled({ user: "bob", disabled: false }, ROOT);
    expect((await check(t.accessToken)).reason).toBe(Reason.REVOKED);
    const again = await login("bob", "bob-password-1");
    expect((await check(again.accessToken)).allowed).toBe(true);
    await admin.setUserDisabled({ user: "bob", disabled: true }, ROOT);
    await admin.setUserDisabled({ user: "bob", disabled: false }, ROOT);
    const t2 = await login("bob", "bob-password-1");
    const deleted = await admin.deleteUser({ user: "bob" }, ROOT);
    expect((await check(t2.accessToken, "acme", "read:orders", deleted.version, decision2)).allowed).toBe(false);
  });

  it("rotates signing keys with overlap, publishes them as JWKS, and drops them on demand", async () => {
    const before = await login("alice", "alice-password-1");
    const oldKid = header(before.accessToken).kid;
    expect((await grpcError(auth.rotateSigningKey({}, bearer(before.accessToken)))).code).toBe(status.PERMISSION_DENIED);
    const rotated = await auth.rotateSigningKey({}, ROOT);
    expect(rotated.kid).not.toBe(oldKid);
    expect(rotated.verifyingKids).toEqual(expect.arrayContaining([oldKid, rotated.kid]));
    const jwks = (await (await fetch(`${v.httpBase}/.well-known/jwks.json`)).json()) as { keys: Array<Record<string, string>> };
    expect(jwks.keys.map((k) => k.kid)).toEqual(expect.arrayContaining([oldKid, rotated.kid]));
    for (const k of jwks.keys) expect(k).not.toHaveProperty("d");
    expect((await auth.getJwks({})).keys.map((k) => k.kid).sort()).toEqual(jwks.keys.map((k) => k.kid).sort());
    expect((await check(before.accessToken, "acme", "read:orders", rotated.version, decision2)).allowed).toBe(true);
    const after = await login("alice", "alice-password-1");
    expect(header(after.accessToken).kid).toBe(rotated.kid);
    expect((await check(after.accessToken, "acme", "read:orders", 0n, decision2)).allowed).toBe(true);
    const dropped = await auth.rotateSigningKey({ dropPrevious: true }, ROOT);
    expect(dropped.verifyingKids).toEqual([dropped.kid]);
    for (const client of [decision, decision2]) {
      expect((await check(before.accessToken, "acme", "read:orders", dropped.version, client)).reason).toBe(Reason.TOKEN_UNKNOWN_KEY);
      expect((await check(after.accessToken, "acme", "read:orders", dropped.version, client)).reason).toBe(Reason.TOKEN_UNKNOWN_KEY);
    }
    const fresh = await login("alice", "alice-password-1");
    expect((await check(fresh.accessToken, "acme", "read:orders", 0n, decision2)).allowed).toBe(true);
  });

  it("maps external OIDC subjects to users, created on first sight with the default role", async () => {
    const token = await idpToken({ sub: "ext-alice" });
    const first = await check(token);
    expect(first.allowed).toBe(true);
    expect(first.principal?.username).toMatch(/^ext-/);
    expect(first.principal?.roles).toEqual(["READ"]);
    const again = await check(await idpToken({ sub: "ext-alice" }));
    expect(again.principal?.userId).toBe(first.principal?.userId);
    const users = await admin.listUsers({}, ROOT);
    const mapped = users.users.find((u) => u.id === first.principal?.userId);
    expect(mapped).toMatchObject({ externalIssuer: IDP, externalSubject: "ext-alice" });
    expect((await check(await idpToken({ sub: "ext-alice", tenant_id: "other" }))).reason).toBe(Reason.WRONG_TENANT);
    expect((await check(await idpToken({ sub: "ext-alice" }), "acme", "write:orders")).reason).toBe(Reason.FORBIDDEN);
    expect((await grpcError(login(mapped!.username, "any-password-123"))).code).toBe(status.UNAUTHENTICATED);
  });

  it("tokens of one new external subject arriving together keep their own tenant scope", async () => {
    for (let i = 0; i < 5; i++) {
      const sub = `ext-pair-${i}`;
      const [unscoped, scoped] = await Promise.all([idpToken({ sub }), idpToken({ sub, tenant_id: "other" })]);
      const [u, s] = await Promise.all([check(unscoped), check(scoped)]);
      expect({ sub, unscoped: u.allowed, scoped: Reason[s.reason] }).toEqual({ sub, unscoped: true, scoped: "WRONG_TENANT" });
    }
  });

  it("denies each kind of bad token with its own reason code", async () => {
    const own = await login("alice", "alice-password-1");
    const [h, p, s] = own.accessToken.split(".");
    const claims = JSON.parse(Buffer.from(p, "base64url").toString()) as Record<string, unknown>;
    const nowS = Math.floor(Date.now() / 1000);
    const hmacWith = (secret: string | Buffer, head: Record<string, unknown>, body: Record<string, unknown>) => {
      const input = `${b64(head)}.${b64(body)}`;
      return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
    };
    const ownJwk = (await auth.getJwks({})).keys.find((k) => k.kid === header(own.accessToken).kid)!;
    const flipped = s.slice(0, 10) + (s[10] === "A" ? "B" : "A") + s.slice(11);
    const cases: Array<[string, string, Reason]> = [
      ["alg none", `${b64({ alg: "none", typ: "JWT" })}.${p}.`, Reason.TOKEN_ALGORITHM_NOT_ALLOWED],
      ["HMAC with Verdict's public key", hmacWith(Buffer.from(ownJwk.x, "base64url"), { alg: "HS256", kid: ownJwk.kid }, claims), Reason.TOKEN_ALGORITHM_NOT_ALLOWED],
      ["HMAC with the IdP's public key", hmacWith(idpPublicPem, { alg: "HS256", kid: "idp-1" }, { ...claims, iss: IDP, aud: "verdict-api" }), Reason.TOKEN_ALGORITHM_NOT_ALLOWED],
      ["wrong audience", await idpToken({ sub: "ext-alice" }, { aud: "someone-else" }), Reason.TOKEN_WRONG_AUDIENCE],
      ["wrong issuer", await idpToken({ sub: "ext-alice" }, { iss: "https://evil.test" }), Reason.TOKEN_WRONG_ISSUER],
      ["expired", await idpToken({ sub: "ext-alice", exp: nowS - 60, iat: nowS - 120 }), Reason.EXPIRED],
      ["nbf in the future", await idpToken({ sub: "ext-alice", nbf: nowS + 120 }), Reason.TOKEN_NOT_YET_VALID],
      ["tampered payload", `${h}.${b64({ ...claims, sub: "someone-else" })}.${s}`, Reason.TOKEN_BAD_SIGNATURE],
      ["tampered signature", `${h}.${p}.${flipped}`, Reason.TOKEN_BAD_SIGNATURE],
      ["unknown kid", await idpToken({ sub: "ext-alice" }, { kid: "not-in-the-set" }), Reason.TOKEN_UNKNOWN_KEY],
    ];
    for (const [name, token, reason] of cases) {
      const d = await check(token);
      expect({ name, allowed: d.allowed, reason: Reason[d.reason] }).toEqual({ name, allowed: false, reason: Reason[reason] });
      expect(d.message).not.toContain(token.split(".")[2] || "\u0000");
    }
    expect(new Set(cases.map(([, , r]) => r)).size).toBe(7);
    expect((await check(own.accessToken)).allowed).toBe(true);
  });

  it("serves Login as Connect JSON over HTTP", async () => {
    const res = await fetch(`${v.httpBase}/verdict.v1.AuthService/Login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "alice", password: "alice-password-1", tenant: "acme" }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { tokens: { accessToken: string } };
    expect((await check(body.tokens.accessToken)).allowed).toBe(true);
  });
});

describe("tokens: HS256 with a shared secret", () => {
  const schema = freshSchema();
  let v: Verdict;
  let admin: TestClient<typeof AdminService>;
  let auth: TestClient<typeof AuthService>;
  let decision: TestClient<typeof DecisionService>;

  beforeAll(async () => {
    v = await startTestVerdict({ DATABASE_URL: TEST_DATABASE_URL, VERDICT_JWT_SECRET: "a-shared-secret-of-at-least-32-bytes!" }, schema);
    admin = grpcClient(AdminService, v.grpcAddress);
    auth = grpcClient(AuthService, v.grpcAddress);
    decision = grpcClient(DecisionService, v.grpcAddress);
    await admin.createTenant({ id: "acme" }, ROOT);
    await admin.createUser({ username: "dora", password: "dora-password-1" }, ROOT);
    await admin.bindRole({ tenant: "acme", user: "dora", role: "READ" }, ROOT);
  });
  afterAll(async () => {
    for (const c of [admin, auth, decision]) c?.close();
    await v?.close();
    await dropSchema(schema);
  });

  it("signs HS256 tokens that Check accepts, publishes no keys and refuses rotation", async () => {
    const t = (await auth.login({ username: "dora", password: "dora-password-1", tenant: "acme" })).tokens!;
    expect(header(t.accessToken).alg).toBe("HS256");
    expect((await decision.check({ credential: t.accessToken, action: "read:x", tenant: "acme" })).allowed).toBe(true);
    expect((await auth.getJwks({})).keys).toEqual([]);
    expect(await (await fetch(`${v.httpBase}/.well-known/jwks.json`)).json()).toEqual({ keys: [] });
    expect((await grpcError(auth.rotateSigningKey({}, ROOT))).code).toBe(status.FAILED_PRECONDITION);
    await auth.logout({ refreshToken: t.refreshToken });
    expect((await decision.check({ credential: t.accessToken, action: "read:x", tenant: "acme" })).reason).toBe(Reason.REVOKED);
  });
});
