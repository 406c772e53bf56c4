/**
 * Floods of /oauth2/{id}/authorize against a real server and a real OpenID Provider (panva's
 * oidc-provider on loopback), on the machine's Postgres: every authorize stores a pending row, so a
 * client address may leave only VERDICT_OAUTH_AUTHORIZE_MAX_PER_ADDRESS sign-ins unfinished (then
 * 429 with Retry-After; a finished sign-in gives its place back), and the table holds at most
 * VERDICT_OAUTH_MAX_PENDING rows whatever the number of addresses (the oldest are dropped).
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BrowserLike } from "../helpers/browser-like.js";
import { type TestOidcProvider, freePort, onFreePort, startOidcProvider } from "../helpers/oidc-provider.js";
import { TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const PER_ADDRESS = 3;
const MAX_PENDING = 8;

describe("sign-in floods against a real server and a real OpenID Provider", () => {
  const schema = freshSchema();
  const logLines: string[] = [];
  let op: TestOidcProvider;
  let v: Awaited<ReturnType<typeof startTestVerdict>>;
  let base = "";
  let appUrl = "";
  const db = new pg.Client({ connectionString: TEST_DATABASE_URL });

  beforeAll(async () => {
    appUrl = `http://127.0.0.1:${await freePort()}/app`;
    v = await onFreePort(async (port) => {
      base = `http://127.0.0.1:${port}`;
      op = await startOidcProvider([`${base}/oauth2/op/callback`]);
      return startTestVerdict(
        {
          DATABASE_URL: TEST_DATABASE_URL,
          VERDICT_HTTP_ADDR: `127.0.0.1:${port}`,
          VERDICT_PUBLIC_URL: base,
          VERDICT_OAUTH_RETURN_URLS: appUrl,
          VERDICT_LOG_LEVEL: "warn",
          // Loopback is the proxy in front: X-Forwarded-For names the client, as behind Envoy.
          VERDICT_TRUSTED_PROXIES: "127.0.0.1",
          VERDICT_OAUTH_AUTHORIZE_MAX_PER_ADDRESS: String(PER_ADDRESS),
          VERDICT_OAUTH_MAX_PENDING: String(MAX_PENDING),
          OP_CLIENT_SECRET: op.clientSecret,
          VERDICT_OAUTH_PROVIDERS: JSON.stringify([
            { kind: "oidc", issuer: op.issuer, clientId: op.clientId, clientSecretEnv: "OP_CLIENT_SECRET", id: "op", provision: { tenant: "*", role: "READ" } },
          ]),
        },
        schema,
        logLines,
      ).catch(async (error: unknown) => {
        await op.close();
        throw error;
      });
    });
    await db.connect();
  });

  afterAll(async () => {
    await db.end();
    await v?.close();
    await op?.close();
    await dropSchema(schema);
  });

  const pendingRows = async (): Promise<number> => Number((await db.query(`SELECT count(*) AS n FROM "${schema}".oauth_pending`)).rows[0].n);
  const authorize = (from?: string) =>
    fetch(`${base}/oauth2/op/authorize?return_to=${encodeURIComponent(appUrl)}`, { redirect: "manual", headers: from === undefined ? {} : { "x-forwarded-for": from } });
  /** Starts a sign-in from `from`; its state and the flow cookie the browser would hold. */
  async function started(from: string): Promise<{ state: string; cookie: string }> {
    const response = await authorize(from);
    expect(response.status).toBe(302);
    const state = new URL(response.headers.get("location")!).searchParams.get("state")!;
    const cookie = response.headers.getSetCookie().find((c) => c.startsWith("verdict_session_flow="))!.split(";")[0];
    return { state, cookie };
  }
  /** The callback's refusal code for a sign-in's state (no code: a kept state gets past the state check). */
  async function callbackCode(flow: { state: string; cookie: string }): Promise<string> {
    const response = await fetch(`${base}/oauth2/op/callback?state=${flow.state}&iss=${encodeURIComponent(op.issuer)}`, { headers: { cookie: flow.cookie }, redirect: "manual" });
    return ((await response.json()) as { code: string }).code;
  }
  const metric = async (pattern: RegExp): Promise<number> => Number(pattern.exec(await (await fetch(`${v.httpBase}/metrics`)).text())?.[1] ?? 0);

  it("one client address may leave only its budget of sign-ins unfinished: then 429 with Retry-After, and no row is stored", async () => {
    for (let i = 0; i < PER_ADDRESS; i++) expect((await authorize("203.0.113.7")).status).toBe(302);
    const rows = await pendingRows();
    const refused = await authorize("203.0.113.7");
    expect(refused.status).toBe(429);
    const retryAfter = Number(refused.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(590);
    expect(retryAfter).toBeLessThanOrEqual(600);
    expect(refused.headers.get("set-cookie")).toBeNull();
    const body = (await refused.json()) as { code: string; message: string };
    expect(body.code).toBe("rate_limited");
    expect(body.message).toMatch(/too many sign-ins started from this address; retry in \d+ s/);
    expect(await pendingRows()).toBe(rows);
    expect(await metric(/verdict_oauth_sign_ins_total\{provider="op",outcome="rate_limited"\} (\d+)/)).toBe(1);
    // Other addresses have budgets of their own; X-Forwarded-For counts because loopback is a trusted proxy.
    expect((await authorize("203.0.113.8")).status).toBe(302);
  });

  it("addresses of one IPv6 /64 share one budget: an IPv6 client holds the whole /64", async () => {
    for (let i = 1; i <= PER_ADDRESS; i++) expect((await authorize(`2001:db8:5:1::${i}`)).status).toBe(302);
    expect((await authorize("2001:0db8:0005:0001:ffff:0000:0000:0001")).status).toBe(429);
    expect((await authorize("2001:db8:5:2::1")).status).toBe(302);
  });

  it("a finished sign-in gives its place back", async () => {
    const browser = new BrowserLike();
    // From the socket's own address (no X-Forwarded-For): two started and left, one finished.
    for (let i = 0; i < PER_ADDRESS - 1; i++) expect((await authorize()).status).toBe(302);
    const isCallback = (location: string) => location.startsWith(`${base}/oauth2/op/callback`);
    const start = await browser.follow(`${base}/oauth2/op/authorize?return_to=${encodeURIComponent(appUrl)}`, isCallback);
    const afterLogin = await browser.submitForm(start.page, { login: "flood-survivor", password: "any" }, isCallback);
    const atCallback = afterLogin.stoppedAt ?? (await browser.submitForm(afterLogin.page, {}, isCallback)).stoppedAt!;
    const landed = await browser.request(atCallback);
    expect(landed.status, landed.body).toBe(303);
    expect(browser.cookie(base, "verdict_session")).toBeTruthy();
    expect((await authorize()).status).toBe(302);
    expect((await authorize()).status).toBe(429);
  });

  it("however many addresses flood it, the table keeps at most VERDICT_OAUTH_MAX_PENDING rows: the oldest go, the newest finish", async () => {
    const oldest = await started("198.51.100.1");
    const droppedBefore = await metric(/verdict_oauth_pending_dropped_total (\d+)/);
    let newest = oldest;
    for (let a = 2; a <= 12; a++) {
      for (let i = 0; i < PER_ADDRESS; i++) newest = await started(`198.51.100.${a}`);
    }
    expect(await pendingRows()).toBeLessThanOrEqual(MAX_PENDING);
    expect(await metric(/verdict_oauth_pending_dropped_total (\d+)/)).toBeGreaterThanOrEqual(droppedBefore + 11 * PER_ADDRESS + 1 - MAX_PENDING);
    // The oldest sign-in was dropped; the newest is still there (past the state check, refused for its missing code).
    expect(await callbackCode(oldest)).toBe("state_invalid");
    expect(await callbackCode(newest)).not.toBe("state_invalid");
    const warning = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.msg === "pending sign-ins at VERDICT_OAUTH_MAX_PENDING: dropping the oldest");
    expect(warning).toMatchObject({ level: "warn", component: "oauth", maxPending: MAX_PENDING });
  });
});
