/**
 * Sign-in through a real OpenID Provider (panva's oidc-provider on loopback), driven like a browser:
 * follow the redirects, post its login and consent forms, land on the callback. Verdict runs with
 * the machine's Postgres. Covers the JSON and cookie results, Check / ext_authz-style credentials,
 * the refresh cookie (rotation, reuse, revocation, cross-origin refusals), sign-out, linking, provisioning rules, and every refusal the issue lists (state, code, PKCE, ID
 * token, open redirect, account takeover, secrets in logs, disabled users, deleted links, removed
 * providers).
 */
import { createHash } from "node:crypto";
import { SignJWT, decodeJwt, decodeProtectedHeader, generateKeyPair } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { AuthService } from "../../gen/verdict/v1/auth_pb.js";
import { DecisionService } from "../../gen/verdict/v1/decision_pb.js";
import { Reason } from "../../gen/verdict/v1/types_pb.js";
import { BrowserLike, type Page } from "../helpers/browser-like.js";
import { type CheckResponse, envoyClient, envoyRequest } from "../helpers/envoy-client.js";
import { type TestClient, grpcClient, grpcError } from "../helpers/grpc.js";
import { type TestOidcProvider, freePort, onFreePort, startOidcProvider } from "../helpers/oidc-provider.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const ROOT = { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString("base64")}` };
type Verdict = Awaited<ReturnType<typeof startTestVerdict>>;
type Claims = Record<string, unknown>;

/** The refresh cookie's name beside the default session cookie. */
const REFRESH = "verdict_session_refresh";

/** Rewrites the ID token in the provider's token response, when a test sets `forge`. */
interface Forgery {
  forge?: (claims: Claims, header: Claims) => Promise<string>;
  /** Drops code_verifier from the token request (a client that forgot it). */
  dropVerifier?: boolean;
}

describe("sign-in through a real OpenID Provider", () => {
  const schema = freshSchema();
  const forgery: Forgery = {};
  const logLines: string[] = [];
  let op: TestOidcProvider;
  let v: Verdict;
  let base = "";
  let appUrl = "";
  let decision: TestClient<typeof DecisionService>;
  let admin: TestClient<typeof AdminService>;
  let auth: TestClient<typeof AuthService>;

  /** Every code, verifier, token and secret that crossed the wire, to look for them in logs. */
  const secrets = new Set<string>();
  /** Every refusal Verdict answered during the run. */
  const refusals: string[] = [];
  const providerFetch: typeof fetch = async (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const form = url.endsWith("/token") ? new URLSearchParams(init?.body as URLSearchParams | string) : undefined;
    if (form) {
      for (const [k, val] of form) if (["code", "code_verifier", "client_secret"].includes(k)) secrets.add(val);
      expect(form.get("code_verifier")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    }
    if (form && forgery.dropVerifier) {
      form.delete("code_verifier");
      init = { ...init, body: form };
    }
    const response = await fetch(input, init);
    if (!url.endsWith("/token") || !response.ok) return response;
    const body = (await response.json()) as { id_token: string; access_token: string };
    secrets.add(body.access_token);
    secrets.add(body.id_token);
    if (forgery.forge) body.id_token = await forgery.forge(decodeJwt(body.id_token) as Claims, decodeProtectedHeader(body.id_token) as Claims);
    return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
  };

  const common = () => ({ kind: "oidc", issuer: op.issuer, clientId: op.clientId, clientSecretEnv: "OP_CLIENT_SECRET" });

  beforeAll(async () => {
    appUrl = `http://127.0.0.1:${await freePort()}/app`;
    v = await onFreePort(async (port) => {
      base = `http://127.0.0.1:${port}`;
      op = await startOidcProvider([`${base}/oauth2/op/callback`, `${base}/oauth2/strict/callback`, `${base}/oauth2/mail/callback`]);
      return startTestVerdict(
      {
        DATABASE_URL: TEST_DATABASE_URL,
        VERDICT_HTTP_ADDR: `127.0.0.1:${port}`,
        VERDICT_PUBLIC_URL: base,
        VERDICT_OAUTH_RETURN_URLS: appUrl,
        VERDICT_LOG_LEVEL: "debug",
        // Every refusal this file provokes (states, codes, refresh cookies) comes from loopback: room
        // for all of them; the per-address budget itself is token-guessing.test.ts's.
        VERDICT_LOGIN_MAX_ATTEMPTS_PER_ADDRESS: "10000",
        OP_CLIENT_SECRET: op.clientSecret,
        // The provider's own tokens are accepted by Check too (but never link an identity).
        VERDICT_OIDC_ISSUERS: JSON.stringify([{ issuer: op.issuer, audience: "verdict", jwksUrl: `${op.issuer}/jwks`, createUsers: true, defaultTenant: "acme", defaultRole: "READ" }]),
        VERDICT_OAUTH_PROVIDERS: JSON.stringify([
          { ...common(), id: "op", provision: { tenant: "acme", role: "READ" } },
          { ...common(), id: "strict" },
          { ...common(), id: "mail", linkVerifiedEmail: true },
        ]),
      },
      schema,
      logLines,
      { providerFetch },
    ).catch(async (error: unknown) => {
      await op.close();
      throw error;
    });
    });
    decision = grpcClient(DecisionService, v.grpcAddress);
    admin = grpcClient(AdminService, v.grpcAddress);
    auth = grpcClient(AuthService, v.grpcAddress);
    await admin.createTenant({ id: "acme", displayName: "Acme" }, ROOT);
  });

  afterAll(async () => {
    decision?.close();
    admin?.close();
    auth?.close();
    await v?.close();
    await op?.close();
    await dropSchema(schema);
  });

  const isCallback = (location: string) => location.startsWith(`${base}/oauth2/`) && location.includes("/callback");

  /** Starts a sign-in and walks the provider's pages up to (not into) Verdict's callback. */
  async function toCallback(browser: BrowserLike, provider: string, login: string, query = `return_to=${encodeURIComponent(appUrl)}`): Promise<string> {
    const url = await walk(browser, provider, login, query);
    for (const k of ["code", "state"]) secrets.add(new URL(url).searchParams.get(k)!);
    return url;
  }

  async function walk(browser: BrowserLike, provider: string, login: string, query: string): Promise<string> {
    const start = await browser.follow(`${base}/oauth2/${provider}/authorize?${query}`, isCallback);
    if (start.stoppedAt) return start.stoppedAt;
    expect(start.page.status, start.page.body).toBe(200);
    const afterLogin = await browser.submitForm(start.page, { login, password: "any" }, isCallback);
    if (afterLogin.stoppedAt) return afterLogin.stoppedAt;
    const afterConsent = await browser.submitForm(afterLogin.page, {}, isCallback);
    if (!afterConsent.stoppedAt) throw new Error(`no callback after consent: ${afterConsent.page.status} ${afterConsent.page.body.slice(0, 300)}`);
    return afterConsent.stoppedAt;
  }

  async function signIn(browser: BrowserLike, provider: string, login: string, query?: string): Promise<Page> {
    const page = await browser.request(await toCallback(browser, provider, login, query));
    if (page.status >= 400) refusals.push(page.body);
    for (const name of ["verdict_session", REFRESH]) {
      const value = browser.cookie(base, name);
      if (value) secrets.add(value);
    }
    const tokens = page.status === 200 ? json(page).tokens : undefined;
    if (tokens) for (const t of [tokens.accessToken, tokens.refreshToken]) secrets.add(t);
    return page;
  }

  /** Signs out of the provider (drops its cookies), so that the next walk logs in anew. */
  const leaveProvider = (browser: BrowserLike) => browser.dropCookies(op.issuer, (name) => name.startsWith("_"));

  const check = (credential: string, action = "read:orders") => decision.check({ credential, action, tenant: "acme" });
  const json = (page: Page) => JSON.parse(page.body) as { code?: string; message?: string; tokens?: { accessToken: string; refreshToken: string; sessionId: string } };

  /** POST /oauth2/refresh from `browser` with `headers` (by default as a page of Verdict's own origin); the new cookies join the secrets. */
  async function refresh(browser: BrowserLike, headers: Record<string, string> = { origin: base }): Promise<Page> {
    const page = await browser.request(`${base}/oauth2/refresh`, { method: "POST", headers });
    if (page.status >= 400) refusals.push(page.body);
    for (const name of ["verdict_session", REFRESH]) {
      const value = browser.cookie(base, name);
      if (value) secrets.add(value);
    }
    return page;
  }

  /** The Set-Cookie lines of `page` that clear both session cookies. */
  const clearsBoth = (page: Page) =>
    ["verdict_session=; Max-Age=0; Path=/;", `${REFRESH}=; Max-Age=0; Path=/oauth2/;`].every((start) => page.headers.getSetCookie().some((c) => c.startsWith(start)));

  it("a new person signs in with the cookie result: redirected to return_to, HttpOnly Secure SameSite=Lax cookie, provisioned with READ in acme", async () => {
    const browser = new BrowserLike();
    const authorize = await browser.request(`${base}/oauth2/op/authorize?return_to=${encodeURIComponent(appUrl)}`);
    expect(authorize.status).toBe(302);
    const to = new URL(authorize.headers.get("location")!);
    expect(to.origin).toBe(op.issuer);
    expect(to.searchParams.get("code_challenge_method")).toBe("S256");
    expect(to.searchParams.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(to.searchParams.get("state")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(to.searchParams.get("nonce")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(to.searchParams.get("redirect_uri")).toBe(`${base}/oauth2/op/callback`);

    const landed = await signIn(browser, "op", "alice");
    expect(landed.status, landed.body).toBe(303);
    expect(landed.headers.get("location")).toBe(appUrl);
    const setCookie = landed.headers.getSetCookie().find((c) => c.startsWith("verdict_session="))!;
    expect(setCookie).toMatch(/HttpOnly/i);
    expect(setCookie).toMatch(/Secure/i);
    expect(setCookie).toMatch(/SameSite=Lax/i);
    expect(setCookie).toMatch(/Path=\//);
    const session = browser.cookie(base, "verdict_session")!;
    expect((await check(session)).allowed).toBe(true);
    expect((await check(session, "write:orders")).reason).toBe(Reason.FORBIDDEN);
  });

  it("the JSON result: no return_to answers a token pair whose refresh token works", async () => {
    const page = await signIn(new BrowserLike(), "op", "bob", "");
    expect(page.status, page.body).toBe(200);
    const { tokens } = json(page);
    expect(tokens?.refreshToken).toMatch(/^vrt_/);
    expect((await check(tokens!.accessToken)).allowed).toBe(true);
  });

  it("signing in again reuses the linked user", async () => {
    const first = json(await signIn(new BrowserLike(), "op", "carol", "")).tokens!;
    const second = json(await signIn(new BrowserLike(), "op", "carol", "")).tokens!;
    const a = await check(first.accessToken);
    const b = await check(second.accessToken);
    expect(a.principal?.userId).toBe(b.principal?.userId);
    expect(first.sessionId).not.toBe(second.sessionId);
  });

  /** Signs `claims` with the provider's own key (a token it could have issued, but altered). */
  const resign = (claims: Claims, header: Claims = {}) => new SignJWT(claims).setProtectedHeader({ alg: "RS256", kid: op.kid, ...header }).sign(op.privateKey);

  async function forged(forge: Forgery["forge"], login: string): Promise<Page> {
    forgery.forge = forge;
    try {
      return await signIn(new BrowserLike(), "op", login, "");
    } finally {
      forgery.forge = undefined;
    }
  }

  async function expectNothingFor(login: string): Promise<void> {
    expect(await v.store.identities.getLinkedIdentity("op", login)).toBeUndefined();
  }

  describe("ID tokens are validated", () => {
    it.each([
      ["a wrong nonce", (c: Claims) => resign({ ...c, nonce: "another-nonce" }), "nonce"],
      ["a wrong audience", (c: Claims) => resign({ ...c, aud: "someone-else" }), "aud"],
      ["a wrong issuer", (c: Claims) => resign({ ...c, iss: "http://127.0.0.1:1" }), "iss"],
      ["an expired token", (c: Claims) => resign({ ...c, iat: Math.floor(Date.now() / 1000) - 7200, exp: Math.floor(Date.now() / 1000) - 3600 }), "exp"],
    ])("refuses %s", async (_name, forge, claim) => {
      const login = `forged-${claim}`;
      const page = await forged(forge, login);
      expect(page.status, page.body).toBe(400);
      expect(json(page).code).toBe("id_token_invalid");
      expect(json(page).message).toContain(claim === "exp" ? "expiration" : claim);
      await expectNothingFor(login);
    });

    it("refuses alg none", async () => {
      const page = await forged(async (c) => `${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from(JSON.stringify(c)).toString("base64url")}.`, "forged-none");
      expect(page.status, page.body).toBe(400);
      expect(json(page).code).toBe("id_token_invalid");
      await expectNothingFor("forged-none");
    });

    it("refuses a token signed by a key not in the provider's JWKS (same kid, and an unknown kid)", async () => {
      const { privateKey } = await generateKeyPair("RS256");
      for (const kid of [op.kid, "not-a-provider-key"]) {
        const page = await forged((c) => new SignJWT(c).setProtectedHeader({ alg: "RS256", kid }).sign(privateKey), `forged-key-${kid}`);
        expect(page.status, page.body).toBe(400);
        expect(json(page).code).toBe("id_token_invalid");
        await expectNothingFor(`forged-key-${kid}`);
      }
    });
  });

  describe("identifiers from the provider are usable", () => {
    it.each([
      ["a blank subject", { sub: " " }],
      ["a whitespace-only subject", { sub: "\t \u00a0" }],
      ["a padded subject", { sub: " forged-padded" }],
      ["a subject with a NUL", { sub: "forged\u0000nul" }],
      ["an invisible subject", { sub: "\u200b" }],
      ["an over-long subject", { sub: "s".repeat(256) }],
      ["an email with a newline", { email: "forged\n@example.com" }],
    ])("refuses %s, and creates nothing", async (_name, claims) => {
      const before = (await admin.listUsers({}, ROOT)).users.length;
      const page = await forged((c) => resign({ ...c, ...claims }), "forged-identifier");
      expect(page.status, page.body).toBe(400);
      expect(json(page).code).toBe("identity_invalid");
      expect(json(page).message).toMatch("sub" in claims ? /subject/ : /email/);
      expect((await admin.listUsers({}, ROOT)).users.length).toBe(before);
      await expectNothingFor("forged-identifier");
    });
  });

  describe("state, code and PKCE", () => {
    it("refuses a callback without state, and creates nothing", async () => {
      const browser = new BrowserLike();
      const callback = new URL(await toCallback(browser, "op", "nostate", ""));
      callback.searchParams.delete("state");
      const page = await browser.request(callback.href);
      expect([page.status, json(page).code]).toEqual([400, "state_missing"]);
      await expectNothingFor("nostate");
    });

    it("refuses a wrong state", async () => {
      const browser = new BrowserLike();
      const callback = new URL(await toCallback(browser, "op", "wrongstate", ""));
      callback.searchParams.set("state", "A".repeat(43));
      const page = await browser.request(callback.href);
      expect([page.status, json(page).code]).toEqual([400, "state_invalid"]);
      await expectNothingFor("wrongstate");
    });

    it("refuses a state started in another browser (no login CSRF)", async () => {
      const callback = await toCallback(new BrowserLike(), "op", "csrf-victim", "");
      const page = await new BrowserLike().request(callback);
      expect([page.status, json(page).code]).toEqual([400, "state_invalid"]);
      await expectNothingFor("csrf-victim");
    });

    it("refuses a reused state and a reused code", async () => {
      const browser = new BrowserLike();
      const callback = await toCallback(browser, "op", "replay", "");
      const flow = browser.cookie(base, "verdict_session_flow")!;
      expect((await browser.request(callback)).status).toBe(200);
      // The same callback again, even with the flow cookie put back: the state was used.
      browser.setCookie(base, "verdict_session_flow", flow, "/oauth2/");
      const again = await browser.request(callback);
      expect([again.status, json(again).code]).toEqual([400, "state_invalid"]);
      // The used code with a fresh, valid state: the provider refuses the code.
      const fresh = new URL(await toCallback(browser, "op", "replay", ""));
      const reused = new URL(callback);
      reused.searchParams.set("state", fresh.searchParams.get("state")!);
      const page = await browser.request(reused.href);
      expect([page.status, json(page).code]).toEqual([400, "code_exchange_refused"]);
      expect(json(page).message).toContain("invalid_grant");
    });

    it("refuses an expired state", async () => {
      const browser = new BrowserLike();
      const callback = await toCallback(browser, "op", "slowpoke", "");
      const state = new URL(callback).searchParams.get("state")!;
      const pg = (await import("pg")).default;
      const db = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await db.connect();
      try {
        const hash = createHash("sha256").update(state).digest("hex");
        const { rowCount } = await db.query(`UPDATE "${schema}".oauth_pending SET expires_at = $2 WHERE state_hash = $1`, [hash, Date.now() - 1]);
        expect(rowCount).toBe(1);
      } finally {
        await db.end();
      }
      const page = await browser.request(callback);
      expect([page.status, json(page).code]).toEqual([400, "state_invalid"]);
      await expectNothingFor("slowpoke");
    });

    it("a code exchanged with another sign-in's PKCE verifier is refused by the provider, and Verdict says so", async () => {
      const victim = await toCallback(new BrowserLike(), "op", "pkce-victim", "");
      const attacker = new BrowserLike();
      const own = new URL(await toCallback(attacker, "op", "pkce-attacker", ""));
      const injected = new URL(victim);
      injected.searchParams.set("state", own.searchParams.get("state")!);
      const page = await attacker.request(injected.href);
      expect([page.status, json(page).code]).toEqual([400, "code_exchange_refused"]);
      expect(json(page).message).toMatch(/PKCE verifier/);
      await expectNothingFor("pkce-victim");
    });
    it("a token request without the PKCE verifier is refused by the provider, and Verdict says so", async () => {
      forgery.dropVerifier = true;
      try {
        const page = await signIn(new BrowserLike(), "op", "no-verifier", "");
        expect([page.status, json(page).code]).toEqual([400, "code_exchange_refused"]);
      } finally {
        forgery.dropVerifier = false;
      }
      await expectNothingFor("no-verifier");
    });
  });

  describe("no open redirect", () => {
    it.each([
      ["protocol-relative", () => "//evil.com"],
      ["another host", () => "https://evil.com/app"],
      ["a suffix host", (app: string) => app.replace("/app", ".evil.com/app")],
      ["a host suffix of the allowed one", () => "http://127.0.0.1.evil.com/app"],
      ["backslashes", (app: string) => app.replace("http://", "http:\\\\")],
      ["a backslash before @", (app: string) => app.replace("/app", "\\@evil.com/app")],
      ["an encoded URL", (app: string) => encodeURIComponent(app)],
      ["dot segments", (app: string) => `${app}/../admin`],
      ["encoded dot segments", (app: string) => `${app}/%2e%2e/admin`],
      ["credentials", (app: string) => app.replace("http://", "http://user@")],
      ["javascript:", () => "javascript:alert(1)"],
    ])("refuses return_to with %s before leaving Verdict", async (_name, make) => {
      const target = make(appUrl);
      const page = await new BrowserLike().request(`${base}/oauth2/op/authorize?return_to=${encodeURIComponent(target)}`);
      expect(page.status).toBe(400);
      expect(page.headers.get("location")).toBeNull();
      expect(json(page).code).toBe("invalid_return_to");
    });
  });

  describe("accounts", () => {
    it("never joins an existing user by email unless the provider allows verified-email linking, and then only verified", async () => {
      const dave = (await admin.createUser({ username: "dave@example.com", password: "a-long-password-1" }, ROOT)).user!;
      const erin = (await admin.createUser({ username: "unverified-erin@example.com", password: "a-long-password-1" }, ROOT)).user!;
      const frank = (await admin.createUser({ username: "frank@example.com", password: "a-long-password-1" }, ROOT)).user!;

      const strict = await signIn(new BrowserLike(), "strict", "dave", "");
      expect([strict.status, json(strict).code]).toEqual([403, "not_linked"]);
      const unverified = await signIn(new BrowserLike(), "mail", "unverified-erin", "");
      expect([unverified.status, json(unverified).code]).toEqual([403, "not_linked"]);
      expect(await v.store.identities.listLinkedIdentities(erin.id)).toEqual([]);
      const provisioned = json(await signIn(new BrowserLike(), "op", "frank", "")).tokens!;
      expect((await check(provisioned.accessToken)).principal?.userId).not.toBe(frank.id);

      await admin.bindRole({ tenant: "acme", user: dave.id, role: "READ" }, ROOT);
      const linked = json(await signIn(new BrowserLike(), "mail", "dave", "")).tokens!;
      expect((await check(linked.accessToken)).principal?.userId).toBe(dave.id);
      expect((await admin.listLinkedIdentities({ user: dave.id }, ROOT)).identities.map((i) => [i.provider, i.subject, i.email])).toEqual([["mail", "dave", "dave@example.com"]]);
    });

    it("links a second provider only while signed in", async () => {
      const browser = new BrowserLike();
      await signIn(browser, "op", "gina");
      const gina = (await check(browser.cookie(base, "verdict_session")!)).principal!.userId;

      const anonymous = await new BrowserLike().request(`${base}/oauth2/strict/authorize?link=true&return_to=${encodeURIComponent(appUrl)}`);
      expect([anonymous.status, json(anonymous).code]).toEqual([401, "link_requires_session"]);
      // Neither a token of another issuer nor a signed-out session links anything.
      const foreign = await resign({ sub: "gina", iss: op.issuer, aud: "verdict", iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 600 });
      expect((await check(foreign)).allowed).toBe(true);
      const signedOut = new BrowserLike();
      await signIn(signedOut, "op", "gina-old");
      const old = signedOut.cookie(base, "verdict_session")!;
      await signedOut.request(`${base}/oauth2/logout`, { method: "POST" });
      for (const token of [foreign, old]) {
        const page = await new BrowserLike().request(`${base}/oauth2/strict/authorize?link=true`, { headers: { authorization: `Bearer ${token}` } });
        expect([page.status, json(page).code]).toEqual([401, "link_requires_session"]);
      }

      leaveProvider(browser);
      const linked = await signIn(browser, "strict", "gina-elsewhere", `link=true&return_to=${encodeURIComponent(appUrl)}`);
      expect(linked.status, linked.body).toBe(303);
      const again = json(await signIn(new BrowserLike(), "strict", "gina-elsewhere", "")).tokens!;
      expect((await check(again.accessToken)).principal?.userId).toBe(gina);
      expect((await admin.listLinkedIdentities({ user: gina }, ROOT)).identities.map((i) => i.provider)).toEqual(["op", "strict"]);

      // An identity linked to gina cannot be linked to someone else.
      const other = new BrowserLike();
      await signIn(other, "op", "henry");
      leaveProvider(other);
      const stolen = await signIn(other, "strict", "gina-elsewhere", `link=true&return_to=${encodeURIComponent(appUrl)}`);
      expect([stolen.status, json(stolen).code]).toEqual([409, "identity_linked_elsewhere"]);
    });

    it("a tenant-scoped session cannot link an identity: its sign-ins would not be limited to that tenant", async () => {
      await admin.createUser({ username: "kim", password: "kim-password-12" }, ROOT);
      await admin.bindRole({ tenant: "acme", user: "kim", role: "READ" }, ROOT);
      const login = await fetch(`${base}/verdict.v1.AuthService/Login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username: "kim", password: "kim-password-12", tenant: "acme" }),
      });
      const scoped = ((await login.json()) as { tokens: { accessToken: string } }).tokens.accessToken;
      secrets.add(scoped);
      const browser = new BrowserLike();
      browser.setCookie(base, "verdict_session", scoped);
      const page = await browser.request(`${base}/oauth2/strict/authorize?link=true&return_to=${encodeURIComponent(appUrl)}`);
      expect([page.status, json(page).code]).toEqual([403, "link_requires_unscoped_session"]);
    });

    it("a disabled user cannot sign in, and the sessions it has stop at the next Check", async () => {
      const session = json(await signIn(new BrowserLike(), "op", "ivan", "")).tokens!;
      const user = (await check(session.accessToken)).principal!.userId;
      await admin.setUserDisabled({ user, disabled: true }, ROOT);
      // Disabling a user also revokes its sessions; either way the next Check denies.
      expect([Reason.DISABLED, Reason.REVOKED]).toContain((await check(session.accessToken)).reason);
      const page = await signIn(new BrowserLike(), "op", "ivan", "");
      expect([page.status, json(page).code]).toEqual([403, "user_disabled"]);
    });

    it("a removed link stops new sign-ins through it at once and its sessions at the next Check", async () => {
      const browser = new BrowserLike();
      await signIn(browser, "op", "judy");
      const viaOp = browser.cookie(base, "verdict_session")!;
      const user = (await check(viaOp)).principal!.userId;
      leaveProvider(browser);
      await signIn(browser, "strict", "judy-strict", `link=true&return_to=${encodeURIComponent(appUrl)}`);
      const viaStrict = json(await signIn(new BrowserLike(), "strict", "judy-strict", "")).tokens!;
      expect((await check(viaStrict.accessToken)).allowed).toBe(true);

      const removed = await admin.removeLinkedIdentity({ user, provider: "strict", subject: "judy-strict" }, ROOT);
      expect(removed.revokedSessions).toBe(2);
      expect((await check(viaStrict.accessToken)).reason).toBe(Reason.REVOKED);
      const page = await signIn(new BrowserLike(), "strict", "judy-strict", "");
      expect([page.status, json(page).code]).toEqual([403, "not_linked"]);
      // The session of the linking sign-in went with the link; the one opened through op stays.
      expect((await check(browser.cookie(base, "verdict_session")!)).reason).toBe(Reason.REVOKED);
      expect((await check(viaOp)).allowed).toBe(true);
      // Its refresh cookie is dead too.
      const refreshed = await refresh(browser);
      expect([refreshed.status, json(refreshed).code]).toEqual([401, "session_invalid"]);
    });
  });

  describe("sessions", () => {
    it("ext_authz's built-in rules take the session cookie from the Cookie header", async () => {
      const browser = new BrowserLike();
      await signIn(browser, "op", "mia");
      const session = browser.cookie(base, "verdict_session")!;
      const envoy = envoyClient(v.grpcAddress);
      const ask = (cookie: string) =>
        new Promise<CheckResponse>((resolve, reject) =>
          envoy.Check(envoyRequest({ headers: { cookie, "x-tenant-id": "acme" } }), (error, response) => (error ? reject(error) : resolve(response))),
        );
      try {
        expect((await ask(`theme=dark; verdict_session=${session}`)).http_response).toBe("ok_response");
        const denied = await ask("theme=dark");
        expect(denied.http_response).toBe("denied_response");
        expect(denied.denied_response?.status.code).toBe("Unauthorized");
      } finally {
        envoy.close();
      }
    });

    it("the cookie is a credential on the HTTP API (Check, admin), and sign-out revokes and clears it", async () => {
      const browser = new BrowserLike();
      await signIn(browser, "op", "kate");
      const session = browser.cookie(base, "verdict_session")!;
      const connectCheck = () =>
        browser.request(`${base}/verdict.v1.DecisionService/Check`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ action: "read:orders", tenant: "acme" }),
        });
      const allowed = await connectCheck();
      expect(JSON.parse(allowed.body)).toMatchObject({ allowed: true });

      const out = await browser.request(`${base}/oauth2/logout`, { method: "POST" });
      expect(out.status).toBe(204);
      expect(out.headers.getSetCookie().some((c) => /^verdict_session=;.*Max-Age=0/i.test(c))).toBe(true);
      expect(browser.cookie(base, "verdict_session")).toBeUndefined();
      expect((await check(session)).reason).toBe(Reason.REVOKED);
      expect(JSON.parse((await connectCheck()).body)).toMatchObject({ reason: "REASON_UNAUTHENTICATED" });
    });

    it("the cookie result sets a refresh cookie beside the session cookie: HttpOnly, Secure, SameSite=Strict, host-only, Path=/oauth2/, as long as the refresh token lives", async () => {
      const browser = new BrowserLike();
      const landed = await signIn(browser, "op", "nora");
      const lines = landed.headers.getSetCookie();
      expect(lines.find((c) => c.startsWith("verdict_session="))).toMatch(/^verdict_session=[^;]+; Max-Age=(3599|3600); Path=\/; HttpOnly; Secure; SameSite=Lax$/);
      expect(lines.find((c) => c.startsWith(`${REFRESH}=`))).toMatch(/^verdict_session_refresh=vrt_[A-Za-z0-9_-]{43}; Max-Age=2592000; Path=\/oauth2\/; HttpOnly; Secure; SameSite=Strict$/);
      // The JSON result (no return_to) sets no session cookie at all.
      const asJson = await signIn(new BrowserLike(), "op", "nora", "");
      expect(asJson.headers.getSetCookie().filter((c) => !c.startsWith("verdict_session_flow="))).toEqual([]);
    });

    it("POST /oauth2/refresh rotates the session: both cookies anew, no token in the answer, the same session and user", async () => {
      const browser = new BrowserLike();
      await signIn(browser, "op", "olga");
      const before = { access: browser.cookie(base, "verdict_session")!, refresh: browser.cookie(base, REFRESH)! };
      const page = await refresh(browser);
      expect(page.status, page.body).toBe(200);
      expect(JSON.parse(page.body)).toEqual({ expiresIn: expect.any(Number), refreshExpiresIn: 2592000 });
      expect(page.headers.get("cache-control")).toBe("no-store");
      const after = { access: browser.cookie(base, "verdict_session")!, refresh: browser.cookie(base, REFRESH)! };
      expect(after.access).not.toBe(before.access);
      expect(after.refresh).not.toBe(before.refresh);
      expect(decodeJwt(after.access).sid).toBe(decodeJwt(before.access).sid);
      const [was, now] = [await check(before.access), await check(after.access)];
      expect(now.allowed).toBe(true);
      expect(now.principal?.userId).toBe(was.principal?.userId);
      // A client that is no browser (no Origin, no Fetch Metadata) refreshes too, with its cookie jar.
      expect((await refresh(browser, {})).status).toBe(200);
    });

    it("a refresh cookie presented twice is reuse: 401 session_reused, cookies cleared, the session revoked for cookies and API alike", async () => {
      const browser = new BrowserLike();
      await signIn(browser, "op", "pia");
      const used = browser.cookie(base, REFRESH)!;
      expect((await refresh(browser)).status).toBe(200);
      const current = browser.cookie(base, "verdict_session")!;
      const copy = new BrowserLike();
      copy.setCookie(base, REFRESH, used, "/oauth2/");
      const reused = await refresh(copy);
      expect([reused.status, json(reused).code]).toEqual([401, "session_reused"]);
      expect(clearsBoth(reused)).toBe(true);
      expect((await check(current)).reason).toBe(Reason.REVOKED);
      // The browser's current refresh cookie went with the session: nothing revives it.
      const next = await refresh(browser);
      expect([next.status, json(next).code]).toEqual([401, "session_invalid"]);
      expect(clearsBoth(next)).toBe(true);
      expect(browser.cookie(base, REFRESH)).toBeUndefined();
    });

    it("the refresh cookie and AuthService.Refresh rotate one token family: rotated over the API, the cookie's copy is reuse", async () => {
      const browser = new BrowserLike();
      await signIn(browser, "op", "quinn");
      const viaApi = (await auth.refresh({ refreshToken: browser.cookie(base, REFRESH)! })).tokens!;
      secrets.add(viaApi.accessToken);
      secrets.add(viaApi.refreshToken);
      const page = await refresh(browser);
      expect([page.status, json(page).code]).toEqual([401, "session_reused"]);
      expect((await check(viaApi.accessToken)).reason).toBe(Reason.REVOKED);
      expect((await grpcError(auth.refresh({ refreshToken: viaApi.refreshToken }))).details).toBe("invalid refresh token");
    });

    it("sign-out after the session cookie expired still revokes the session, through the refresh cookie, and clears both", async () => {
      const browser = new BrowserLike();
      await signIn(browser, "op", "rosa");
      const access = browser.cookie(base, "verdict_session")!;
      const refreshToken = browser.cookie(base, REFRESH)!;
      // What the browser does at the session cookie's Max-Age.
      browser.dropCookie(base, "verdict_session");
      const out = await browser.request(`${base}/oauth2/logout`, { method: "POST", headers: { origin: base } });
      expect(out.status).toBe(204);
      expect(clearsBoth(out)).toBe(true);
      expect(browser.cookie(base, REFRESH)).toBeUndefined();
      expect((await check(access)).reason).toBe(Reason.REVOKED);
      const copy = new BrowserLike();
      copy.setCookie(base, REFRESH, refreshToken, "/oauth2/");
      const page = await refresh(copy);
      expect([page.status, json(page).code]).toEqual([401, "session_invalid"]);
    });

    it("a disabled user's refresh cookie is refused and cleared, and enabling the user again revives nothing", async () => {
      const browser = new BrowserLike();
      await signIn(browser, "op", "sven");
      const refreshToken = browser.cookie(base, REFRESH)!;
      const user = (await check(browser.cookie(base, "verdict_session")!)).principal!.userId;
      await admin.setUserDisabled({ user, disabled: true }, ROOT);
      const page = await refresh(browser);
      expect([page.status, json(page).code]).toEqual([401, "session_invalid"]);
      expect(clearsBoth(page)).toBe(true);
      await admin.setUserDisabled({ user, disabled: false }, ROOT);
      const copy = new BrowserLike();
      copy.setCookie(base, REFRESH, refreshToken, "/oauth2/");
      expect(json(await refresh(copy)).code).toBe("session_invalid");
    });

    it("refresh and sign-out refuse pages of untrusted origins before touching any cookie or session", async () => {
      const browser = new BrowserLike();
      await signIn(browser, "op", "tara");
      const refreshToken = browser.cookie(base, REFRESH)!;
      const foreign: Record<string, string>[] = [
        { origin: "http://evil.test", "sec-fetch-site": "cross-site" },
        { origin: "http://127.0.0.1:1", "sec-fetch-site": "same-site" },
        { origin: "null" },
        { "sec-fetch-site": "cross-site" },
      ];
      for (const headers of foreign) {
        for (const route of ["refresh", "logout"]) {
          const page = await browser.request(`${base}/oauth2/${route}`, { method: "POST", headers });
          expect([route, page.status, json(page).code]).toEqual([route, 403, "cross_origin"]);
          expect(page.headers.getSetCookie()).toEqual([]);
        }
      }
      expect(browser.cookie(base, REFRESH)).toBe(refreshToken);
      expect((await check(browser.cookie(base, "verdict_session")!)).allowed).toBe(true);
      // The browser vouching for the same origin is enough, whatever name Verdict was reached by.
      expect((await refresh(browser, { origin: "http://verdict.internal:8080", "sec-fetch-site": "same-origin" })).status).toBe(200);
    });

    it("refusals of /oauth2/refresh answer a code, never a 500", async () => {
      const get = await new BrowserLike().request(`${base}/oauth2/refresh`);
      expect([get.status, json(get).code]).toEqual([405, "method_not_allowed"]);
      const none = await refresh(new BrowserLike());
      expect([none.status, json(none).code]).toEqual([401, "session_missing"]);
      expect(none.headers.getSetCookie()).toEqual([]);
      for (const value of ["not-a-token", `vrt_${"A".repeat(43)}`, `vrt_${"A".repeat(42)}!`]) {
        const browser = new BrowserLike();
        browser.setCookie(base, REFRESH, value, "/oauth2/");
        const page = await refresh(browser);
        expect([page.status, json(page).code]).toEqual([401, "session_invalid"]);
      }
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/verdict_session_cookie_requests_total\{route="refresh",outcome="session_missing"\} [1-9]/);
      expect(metrics).toMatch(/verdict_session_cookie_requests_total\{route="refresh",outcome="refreshed"\} [1-9]/);
      expect(metrics).toMatch(/verdict_session_cookie_requests_total\{route="logout",outcome="cross_origin"\} [1-9]/);
    });

    it("a provider removed from the configuration: sessions opened through it stop at the next Check, and its routes are gone", async () => {
      const browser = new BrowserLike();
      await signIn(browser, "op", "leo");
      leaveProvider(browser);
      await signIn(browser, "strict", "leo-strict", `link=true&return_to=${encodeURIComponent(appUrl)}`);
      const viaStrict = browser.cookie(base, "verdict_session")!;
      const viaOp = json(await signIn(new BrowserLike(), "op", "leo", "")).tokens!.accessToken;
      const replica = await startTestVerdict(
        {
          DATABASE_URL: TEST_DATABASE_URL,
          VERDICT_PUBLIC_URL: base,
          OP_CLIENT_SECRET: op.clientSecret,
          VERDICT_OAUTH_PROVIDERS: JSON.stringify([{ ...common(), id: "op" }, { ...common(), id: "mail" }]),
        },
        schema,
      );
      try {
        const gone = await new BrowserLike().request(`${replica.httpBase}/oauth2/strict/authorize`);
        expect([gone.status, json(gone).code]).toEqual([404, "unknown_provider"]);
        await v.engine.waitForVersion(replica.engine.version, 15_000);
        expect((await check(viaStrict)).reason).toBe(Reason.REVOKED);
        expect((await check(viaOp)).allowed).toBe(true);
      } finally {
        await replica.close();
      }
    });
  });

  it("Verdict served under a path prefix (VERDICT_PUBLIC_URL with a path): the sign-in cookies are scoped to the browser's path", async () => {
    const replica = await startTestVerdict(
      {
        DATABASE_URL: TEST_DATABASE_URL,
        VERDICT_PUBLIC_URL: `${base}/auth/`,
        VERDICT_OAUTH_RETURN_URLS: appUrl,
        OP_CLIENT_SECRET: op.clientSecret,
        VERDICT_OAUTH_PROVIDERS: JSON.stringify([{ ...common(), id: "op" }]),
      },
      schema,
    );
    try {
      const started = await new BrowserLike().request(`${replica.httpBase}/oauth2/op/authorize?return_to=${encodeURIComponent(appUrl)}`);
      expect(started.status).toBe(302);
      expect(new URL(started.headers.get("location")!).searchParams.get("redirect_uri")).toBe(`${base}/auth/oauth2/op/callback`);
      // The browser reaches the callback at /auth/oauth2/...: a flow cookie on /oauth2/ would never come back.
      expect(started.headers.getSetCookie()).toEqual([expect.stringMatching(/^verdict_session_flow=[^;]+; Max-Age=600; Path=\/auth\/oauth2\/; HttpOnly; Secure; SameSite=Lax$/)]);
      const out = await new BrowserLike().request(`${replica.httpBase}/oauth2/logout`, { method: "POST" });
      expect(out.headers.getSetCookie()).toContainEqual(expect.stringMatching(/^verdict_session_refresh=; Max-Age=0; Path=\/auth\/oauth2\/;/));
    } finally {
      await replica.close();
    }
  });

  it("no client secret, code, verifier, state or token appears in a log line, an error or a metric", async () => {
    expect(secrets.size).toBeGreaterThan(20);
    secrets.add(op.clientSecret);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/verdict_oauth_sign_ins_total\{provider="op",outcome="id_token_invalid"\}/);
    expect(refusals.length).toBeGreaterThan(5);
    const haystack = [logLines.join("\n"), metrics, refusals.join("\n")].join("\n");
    expect(logLines.some((l) => l.includes('"sign-in refused"'))).toBe(true);
    for (const secret of secrets) expect(haystack.includes(secret), `a secret of ${secret.length} characters leaked`).toBe(false);
  });
});
