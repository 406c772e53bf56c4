/**
 * The whole browser flow in headless Chromium against Verdict and a real OpenID Provider
 * (oidc-provider) on this machine: an app page on its own origin sends the person to sign in, the
 * provider's login and consent pages are filled in, Verdict's callback sets the session cookie and
 * returns to the app, a script on the app page calls Check with the cookie (CORS with credentials),
 * then signs out and calls Check again.
 */
import { type Server, createServer } from "node:http";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { DecisionService } from "../../gen/verdict/v1/decision_pb.js";
import { Reason } from "../../gen/verdict/v1/types_pb.js";
import { launchChromium } from "../helpers/chromium.js";
import { type TestClient, grpcClient } from "../helpers/grpc.js";
import { type TestOidcProvider, onFreePort, startOidcProvider } from "../helpers/oidc-provider.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const ROOT = { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString("base64")}` };

/** The app page: its script asks Verdict whether the signed-in person may read orders, and signs out. */
function appPage(verdict: string): string {
  return `<!doctype html><html><body><pre id="result">pending</pre><script>
const verdict = ${JSON.stringify(verdict)};
async function check() {
  const r = await fetch(verdict + "/verdict.v1.DecisionService/Check", {
    method: "POST", credentials: "include",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ action: "read:orders", tenant: "acme" }),
  });
  return r.json();
}
async function signOut() {
  const r = await fetch(verdict + "/oauth2/logout", { method: "POST", credentials: "include" });
  return r.status;
}
window.check = check;
window.signOut = signOut;
check().then((answer) => { document.getElementById("result").textContent = JSON.stringify(answer); });
</script></body></html>`;
}

describe("sign-in in headless Chromium", () => {
  const schema = freshSchema();
  let op: TestOidcProvider;
  let v: Awaited<ReturnType<typeof startTestVerdict>>;
  let app: Server;
  let browser: Browser;
  let admin: TestClient<typeof AdminService>;
  let verdict = "";
  let appOrigin = "";

  beforeAll(async () => {
    app = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(appPage(verdict));
    });
    await new Promise<void>((resolve) => app.listen(0, "127.0.0.1", resolve));
    appOrigin = `http://127.0.0.1:${(app.address() as { port: number }).port}`;
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
    await admin.createTenant({ id: "acme", displayName: "Acme" }, ROOT);
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    admin?.close();
    await v?.close();
    await op?.close();
    app?.close();
    await dropSchema(schema);
  });

  it("signs in, lands on the app with the cookie, calls Check from the page, signs out", async () => {
    const context = await browser.newContext();
    // Only this machine: the provider's page imports a web font from the internet.
    await context.route(/^https?:\/\/(?!127\.0\.0\.1[:/])/, (route) => route.abort());
    const page = await context.newPage();

    await page.goto(`${verdict}/oauth2/op/authorize?return_to=${encodeURIComponent(`${appOrigin}/app`)}`);
    await page.fill('input[name="login"]', "walker");
    await page.fill('input[name="password"]', "any password");
    await page.click('button[type="submit"]');
    await page.waitForURL(/\/interaction\//);
    await page.click('button[type="submit"]');
    await page.waitForURL(`${appOrigin}/app`);

    const cookie = (await context.cookies(verdict)).find((c) => c.name === "verdict_session");
    expect(cookie).toMatchObject({ httpOnly: true, secure: true, sameSite: "Lax", path: "/" });
    await expect.poll(() => page.textContent("#result")).not.toBe("pending");
    const first = JSON.parse((await page.textContent("#result"))!) as { allowed?: boolean; principal?: { userId: string } };
    expect(first.allowed).toBe(true);
    // The page's script cannot read the HttpOnly cookie.
    expect(await page.evaluate("document.cookie")).not.toContain("verdict_session");

    expect(await page.evaluate("signOut()")).toBe(204);
    expect((await context.cookies(verdict)).find((c) => c.name === "verdict_session")).toBeUndefined();
    const after = (await page.evaluate("check()")) as { allowed?: boolean; reason?: string };
    expect(after.allowed).toBeFalsy();
    expect(after.reason).toBe("REASON_UNAUTHENTICATED");
    // The token the cookie held is revoked too, should it have been copied.
    const decision = grpcClient(DecisionService, v.grpcAddress);
    try {
      expect((await decision.check({ credential: cookie!.value, action: "read:orders", tenant: "acme" })).reason).toBe(Reason.REVOKED);
    } finally {
      decision.close();
    }
    await context.close();
  });
});
