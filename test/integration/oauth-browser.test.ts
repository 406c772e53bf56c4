/**
 * The whole browser flow in headless Chromium against Verdict and a real OpenID Provider
 * (oidc-provider) on this machine: an app page on its own origin sends the person to sign in, the
 * provider's login and consent pages are filled in, Verdict's callback sets the session and refresh
 * cookies and returns to the app, a script on the app page calls Check with the cookie (CORS with
 * credentials), refreshes the session once the access token has expired, and signs out. Pages of
 * untrusted origins (another site, and the same site on another port) try to refresh and sign out.
 * Access tokens live 3 s here, so that expiry is reached within the test.
 */
import { type IncomingMessage, type Server, createServer } from "node:http";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { DecisionService } from "../../gen/verdict/v1/decision_pb.js";
import { Reason } from "../../gen/verdict/v1/types_pb.js";
import { launchChromium } from "../helpers/chromium.js";
import { type TestClient, grpcClient } from "../helpers/grpc.js";
import { type TestOidcProvider, onFreePort, startOidcProvider } from "../helpers/oidc-provider.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const ROOT = { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString("base64")}` };
const ACCESS_TTL_SECONDS = 3;

/**
 * The app page: its script asks Verdict whether the signed-in person may read orders, refreshes the
 * session (raw, and through the README's lock), and signs out.
 */
function appPage(verdict: string): string {
  return `<!doctype html><html><body><pre id="result">pending</pre><script>
const VERDICT = ${JSON.stringify(verdict)};
async function check() {
  const r = await fetch(VERDICT + "/verdict.v1.DecisionService/Check", {
    method: "POST", credentials: "include",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ action: "read:orders", tenant: "acme" }),
  });
  return r.json();
}
async function refresh() {
  const r = await fetch(VERDICT + "/oauth2/refresh", { method: "POST", credentials: "include" });
  return { status: r.status, body: await r.json() };
}
// As the README shows: one refresh at a time for all of this origin's tabs.
function refreshSession() {
  return navigator.locks.request("verdict-session-refresh", async () => {
    const r = await fetch(VERDICT + "/oauth2/refresh", { method: "POST", credentials: "include" });
    return r.ok;
  });
}
async function checkWithSession() {
  let answer = await check();
  if (answer.reason === "REASON_UNAUTHENTICATED" || answer.reason === "REASON_EXPIRED") {
    if (!(await refreshSession())) return { signedOut: true };
    answer = await check();
  }
  return answer;
}
async function signOut() {
  const r = await fetch(VERDICT + "/oauth2/logout", { method: "POST", credentials: "include" });
  return r.status;
}
Object.assign(window, { check, refresh, refreshSession, checkWithSession, signOut });
check().then((answer) => { document.getElementById("result").textContent = JSON.stringify(answer); });
</script></body></html>`;
}

/** A page of an untrusted origin: posts a form to Verdict's `route` at once (a top-level navigation shows the answer). */
function foreignPage(verdict: string, route: string): string {
  return `<!doctype html><html><body><form method="post" action="${verdict}/oauth2/${route}"></form>
<script>document.forms[0].submit();</script></body></html>`;
}

interface CheckAnswer {
  allowed?: boolean;
  reason?: string;
  principal?: { userId: string };
  signedOut?: boolean;
}

describe("sign-in in headless Chromium", () => {
  const schema = freshSchema();
  let op: TestOidcProvider;
  let v: Awaited<ReturnType<typeof startTestVerdict>>;
  let app: Server;
  let foreign: Server;
  let browser: Browser;
  let admin: TestClient<typeof AdminService>;
  let decision: TestClient<typeof DecisionService>;
  let verdict = "";
  let appOrigin = "";
  let foreignPort = 0;

  const listen = async (server: Server) => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return (server.address() as { port: number }).port;
  };

  beforeAll(async () => {
    app = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(appPage(verdict));
    });
    appOrigin = `http://127.0.0.1:${await listen(app)}`;
    foreign = createServer((req: IncomingMessage, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(foreignPage(verdict, new URL(req.url ?? "/", "http://x").searchParams.get("route") ?? "refresh"));
    });
    foreignPort = await listen(foreign);
    v = await onFreePort(async (port) => {
      verdict = `http://127.0.0.1:${port}`;
      op = await startOidcProvider([`${verdict}/oauth2/op/callback`]);
      return startTestVerdict(
        {
          DATABASE_URL: TEST_DATABASE_URL,
          VERDICT_HTTP_ADDR: `127.0.0.1:${port}`,
          VERDICT_PUBLIC_URL: verdict,
          VERDICT_OAUTH_RETURN_URLS: `${appOrigin}/app`,
          VERDICT_CORS_ORIGINS: appOrigin,
          VERDICT_CORS_ALLOW_CREDENTIALS: "true",
          VERDICT_ACCESS_TOKEN_TTL_SECONDS: String(ACCESS_TTL_SECONDS),
          OP_SECRET: op.clientSecret,
          VERDICT_OAUTH_PROVIDERS: JSON.stringify([
            { id: "op", kind: "oidc", issuer: op.issuer, clientId: op.clientId, clientSecretEnv: "OP_SECRET", provision: { tenant: "acme", role: "READ" } },
          ]),
        },
        schema,
      ).catch(async (error: unknown) => {
        await op.close();
        throw error;
      });
    });
    admin = grpcClient(AdminService, v.grpcAddress);
    decision = grpcClient(DecisionService, v.grpcAddress);
    await admin.createTenant({ id: "acme", displayName: "Acme" }, ROOT);
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    admin?.close();
    decision?.close();
    await v?.close();
    await op?.close();
    app?.close();
    foreign?.close();
    await dropSchema(schema);
  });

  /** A fresh browser context reaching only this machine (the provider's page imports a web font from the internet). */
  async function newContext(): Promise<BrowserContext> {
    const context = await browser.newContext();
    await context.route(/^https?:\/\/(?!(127\.0\.0\.1|localhost)[:/])/, (route) => route.abort());
    return context;
  }

  /** Signs `login` in through the provider's pages; returns the app page it lands on, its first Check answered. */
  async function signIn(context: BrowserContext, login: string): Promise<Page> {
    const page = await context.newPage();
    await page.goto(`${verdict}/oauth2/op/authorize?return_to=${encodeURIComponent(`${appOrigin}/app`)}`);
    await page.fill('input[name="login"]', login);
    await page.fill('input[name="password"]', "any password");
    await page.click('button[type="submit"]');
    await page.waitForURL(/\/interaction\//);
    await page.click('button[type="submit"]');
    await page.waitForURL(`${appOrigin}/app`);
    await expect.poll(() => page.textContent("#result")).not.toBe("pending");
    return page;
  }

  const cookiesOf = async (context: BrowserContext) => {
    // Each for a URL it is sent to: the refresh cookie only goes to /oauth2/.
    const all = await context.cookies([verdict, `${verdict}/oauth2/refresh`]);
    return { session: all.find((c) => c.name === "verdict_session"), refresh: all.find((c) => c.name === "verdict_session_refresh") };
  };
  const firstAnswer = async (page: Page) => JSON.parse((await page.textContent("#result"))!) as CheckAnswer;
  const grpcCheck = (credential: string) => decision.check({ credential, action: "read:orders", tenant: "acme" });

  it("signs in, lands on the app with both cookies, calls Check from the page, signs out", async () => {
    const context = await newContext();
    const page = await signIn(context, "walker");
    const { session, refresh } = await cookiesOf(context);
    expect(session).toMatchObject({ httpOnly: true, secure: true, sameSite: "Lax", path: "/" });
    expect(refresh).toMatchObject({ httpOnly: true, secure: true, sameSite: "Strict", path: "/oauth2/", domain: "127.0.0.1" });
    expect(refresh!.value).toMatch(/^vrt_/);
    // The session cookie lives as long as its access token, the refresh cookie as long as the refresh token (30 days).
    const now = Date.now() / 1000;
    expect(session!.expires - now).toBeLessThanOrEqual(ACCESS_TTL_SECONDS + 1);
    expect(refresh!.expires - now).toBeGreaterThan(29 * 86_400);
    expect((await firstAnswer(page)).allowed).toBe(true);
    // The page's script can read neither HttpOnly cookie.
    expect(await page.evaluate("document.cookie")).not.toContain("verdict_session");

    expect(await page.evaluate("signOut()")).toBe(204);
    expect(await cookiesOf(context)).toEqual({ session: undefined, refresh: undefined });
    const after = (await page.evaluate("check()")) as CheckAnswer;
    expect(after.allowed).toBeFalsy();
    expect(after.reason).toBe("REASON_UNAUTHENTICATED");
    expect(await page.evaluate("refresh()")).toEqual({ status: 401, body: expect.objectContaining({ code: "session_missing" }) });
    // The tokens the cookies held are revoked too, should they have been copied.
    expect((await grpcCheck(session!.value)).reason).toBe(Reason.REVOKED);
    await context.addCookies([refresh!]);
    expect(await page.evaluate("refresh()")).toEqual({ status: 401, body: expect.objectContaining({ code: "session_invalid" }) });
    await context.close();
  });

  it("the session outlives its access token: once the session cookie has expired, the page refreshes and Check allows again", async () => {
    const context = await newContext();
    const page = await signIn(context, "ada");
    const user = (await firstAnswer(page)).principal!.userId;
    const before = await cookiesOf(context);
    // The browser drops the session cookie at its Max-Age; the refresh cookie stays.
    await expect.poll(async () => (await cookiesOf(context)).session, { timeout: (ACCESS_TTL_SECONDS + 5) * 1000, interval: 250 }).toBeUndefined();
    expect((await cookiesOf(context)).refresh?.value).toBe(before.refresh!.value);
    expect(((await page.evaluate("check()")) as CheckAnswer).reason).toBe("REASON_UNAUTHENTICATED");
    // The cookie goes at most a second before its token (whole seconds), which expires in turn: only the refresh brings the session back.
    await expect.poll(async () => (await grpcCheck(before.session!.value)).reason, { timeout: 3000, interval: 250 }).toBe(Reason.EXPIRED);

    const answer = (await page.evaluate("checkWithSession()")) as CheckAnswer;
    expect(answer.allowed).toBe(true);
    expect(answer.principal?.userId).toBe(user);
    const after = await cookiesOf(context);
    expect(after.session).toMatchObject({ httpOnly: true, sameSite: "Lax", path: "/" });
    expect(after.refresh).toMatchObject({ httpOnly: true, secure: true, sameSite: "Strict", path: "/oauth2/" });
    expect(after.refresh!.value).not.toBe(before.refresh!.value);
    await context.close();
  });

  it("two tabs refreshing at the same time through the README's lock both keep the session", async () => {
    const context = await newContext();
    const first = await signIn(context, "grace");
    const second = await context.newPage();
    await second.goto(`${appOrigin}/app`);
    const refreshed = await Promise.all([first.evaluate("refreshSession()"), second.evaluate("refreshSession()"), first.evaluate("refreshSession()")]);
    expect(refreshed).toEqual([true, true, true]);
    expect(((await second.evaluate("check()")) as CheckAnswer).allowed).toBe(true);
    await context.close();
  });

  it("a refresh cookie used twice ends the session: refused as reuse, cookies cleared, the newest tokens revoked", async () => {
    const context = await newContext();
    const page = await signIn(context, "lovelace");
    const used = (await cookiesOf(context)).refresh!;
    expect(await page.evaluate("refresh()")).toEqual({ status: 200, body: { expiresIn: expect.any(Number), refreshExpiresIn: 2_592_000 } });
    const current = await cookiesOf(context);
    // A copy of the old refresh cookie (stolen, or a tab that raced without the lock) comes back.
    await context.addCookies([used]);
    expect(await page.evaluate("refresh()")).toEqual({ status: 401, body: expect.objectContaining({ code: "session_reused" }) });
    expect(await cookiesOf(context)).toEqual({ session: undefined, refresh: undefined });
    expect((await grpcCheck(current.session!.value)).reason).toBe(Reason.REVOKED);
    await context.addCookies([current.refresh!]);
    expect(await page.evaluate("refresh()")).toEqual({ status: 401, body: expect.objectContaining({ code: "session_invalid" }) });
    await context.close();
  });

  it("pages of untrusted origins can neither refresh nor sign out: another site gets no cookie, the same site on another port is refused by origin", async () => {
    const context = await newContext();
    const page = await signIn(context, "hopper");
    const before = await cookiesOf(context);
    /** The Origin and Cookie headers Chromium sent with each POST to the cookie routes. */
    const sent: { origin: string; cookie: string }[] = [];
    context.on("request", (request) => {
      if (request.method() === "POST" && /\/oauth2\/(refresh|logout)$/.test(request.url())) {
        void request.allHeaders().then((h) => sent.push({ origin: h.origin ?? "", cookie: h.cookie ?? "" }));
      }
    });
    const attacks = [`http://localhost:${foreignPort}`, `http://127.0.0.1:${foreignPort}`];
    for (const origin of attacks) {
      for (const route of ["refresh", "logout"]) {
        const attacker = await context.newPage();
        await attacker.goto(`${origin}/?route=${route}`);
        await attacker.waitForURL(`${verdict}/oauth2/${route}`);
        expect(JSON.parse((await attacker.textContent("body"))!)).toMatchObject({ code: "cross_origin" });
        await attacker.close();
      }
    }
    await expect.poll(() => sent.length).toBe(4);
    // SameSite keeps both cookies off the other site's posts; the same site's carry the refresh cookie, and the origin check refused them.
    const cookiesFrom = (origin: string) => sent.filter((r) => r.origin === origin).map((r) => r.cookie);
    expect(cookiesFrom(attacks[0])).toEqual(["", ""]);
    expect(cookiesFrom(attacks[1]).map((cookie) => cookie.includes(`verdict_session_refresh=${before.refresh!.value}`))).toEqual([true, true]);

    const after = await cookiesOf(context);
    expect(after.refresh!.value).toBe(before.refresh!.value);
    // The session goes on (through a refresh, since the access token may have expired meanwhile).
    expect(((await page.evaluate("checkWithSession()")) as CheckAnswer).allowed).toBe(true);
    await context.close();
  });
});
