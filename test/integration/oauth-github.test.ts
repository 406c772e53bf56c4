/**
 * Sign-in with GitHub. The server below STANDS IN FOR GITHUB: it answers GitHub's documented
 * endpoints (/login/oauth/authorize approving at once for the account the test chose,
 * /login/oauth/access_token with PKCE and GitHub's HTTP-200 error bodies, /user and /user/emails
 * with a bearer token), because the tests cannot sign in to github.com. Verdict runs unchanged,
 * with the provider's URLs pointed at the stand-in, on the machine's Postgres.
 */
import { createHash, randomBytes } from "node:crypto";
import { type Server, type ServerResponse, createServer } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { DecisionService } from "../../gen/verdict/v1/decision_pb.js";
import { BrowserLike, type Page } from "../helpers/browser-like.js";
import { type TestClient, grpcClient } from "../helpers/grpc.js";
import { freePort, onFreePort } from "../helpers/oidc-provider.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const ROOT = { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString("base64")}` };

interface GithubAccount {
  readonly id: number;
  readonly login: string;
  readonly emails: readonly { email: string; primary: boolean; verified: boolean }[];
}

/** The stand-in for GitHub's OAuth app endpoints and REST API. */
function startGithubStandIn(clientId: string, clientSecret: string): { server: Server; base: string; signedIn: { account?: GithubAccount }; ready: Promise<void> } {
  const codes = new Map<string, { account: GithubAccount; challenge: string; redirectUri: string; used: boolean }>();
  const tokens = new Map<string, GithubAccount>();
  const signedIn: { account?: GithubAccount } = {};
  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://github.invalid");
    if (req.method === "GET" && url.pathname === "/login/oauth/authorize") {
      const q = url.searchParams;
      if (q.get("client_id") !== clientId || q.get("code_challenge_method") !== "S256" || !signedIn.account) return json(res, 400, { error: "bad request" });
      const code = randomBytes(10).toString("hex");
      codes.set(code, { account: signedIn.account, challenge: q.get("code_challenge") ?? "", redirectUri: q.get("redirect_uri") ?? "", used: false });
      const back = new URL(q.get("redirect_uri")!);
      back.searchParams.set("code", code);
      back.searchParams.set("state", q.get("state") ?? "");
      res.writeHead(302, { location: back.href });
      return res.end();
    }
    if (req.method === "POST" && url.pathname === "/login/oauth/access_token") {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        const p = new URLSearchParams(body);
        const grant = codes.get(p.get("code") ?? "");
        // GitHub reports a bad code with HTTP 200 and an error member.
        if (p.get("client_id") !== clientId || p.get("client_secret") !== clientSecret) return json(res, 200, { error: "incorrect_client_credentials" });
        if (!grant || grant.used || grant.redirectUri !== p.get("redirect_uri")) return json(res, 200, { error: "bad_verification_code", error_description: "The code passed is incorrect or expired." });
        grant.used = true;
        const verifier = p.get("code_verifier") ?? "";
        if (createHash("sha256").update(verifier).digest("base64url") !== grant.challenge) return json(res, 200, { error: "bad_verification_code", error_description: "The code_verifier does not match." });
        const token = `gho_${randomBytes(18).toString("hex")}`;
        tokens.set(token, grant.account);
        json(res, 200, { access_token: token, token_type: "bearer", scope: "read:user,user:email" });
      });
      return;
    }
    const account = tokens.get(/^Bearer (\S+)$/.exec(req.headers.authorization ?? "")?.[1] ?? "");
    if (req.method === "GET" && (url.pathname === "/user" || url.pathname === "/user/emails")) {
      if (!account) return json(res, 401, { message: "Bad credentials" });
      if (url.pathname === "/user") return json(res, 200, { id: account.id, login: account.login, email: account.emails[0]?.email ?? null });
      return json(res, 200, account.emails);
    }
    json(res, 404, { message: "Not Found" });
  });
  const ready = new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    server,
    signedIn,
    ready,
    get base() {
      return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    },
  };
}

describe("sign-in with GitHub (through a local stand-in for GitHub)", () => {
  const schema = freshSchema();
  const clientSecret = `gh-secret-${randomBytes(8).toString("hex")}`;
  const github = startGithubStandIn("gh-client", clientSecret);
  let v: Awaited<ReturnType<typeof startTestVerdict>>;
  let base = "";
  let appUrl = "";
  let decision: TestClient<typeof DecisionService>;
  let admin: TestClient<typeof AdminService>;

  beforeAll(async () => {
    await github.ready;
    appUrl = `http://127.0.0.1:${await freePort()}/app`;
    v = await onFreePort(async (port) => {
      base = `http://127.0.0.1:${port}`;
      return startTestVerdict(
      {
        DATABASE_URL: TEST_DATABASE_URL,
        VERDICT_HTTP_ADDR: `127.0.0.1:${port}`,
        VERDICT_PUBLIC_URL: base,
        VERDICT_OAUTH_RETURN_URLS: appUrl,
        GH_SECRET: clientSecret,
        VERDICT_OAUTH_PROVIDERS: JSON.stringify([
          {
            id: "github",
            kind: "github",
            clientId: "gh-client",
            clientSecretEnv: "GH_SECRET",
            authorizationUrl: `${github.base}/login/oauth/authorize`,
            tokenUrl: `${github.base}/login/oauth/access_token`,
            apiUrl: github.base,
            provision: { tenant: "acme", role: "READ", emailDomains: ["example.com"] },
          },
        ]),
      },
      schema,
    );
    });
    decision = grpcClient(DecisionService, v.grpcAddress);
    admin = grpcClient(AdminService, v.grpcAddress);
    await admin.createTenant({ id: "acme", displayName: "Acme" }, ROOT);
  });

  afterAll(async () => {
    decision?.close();
    admin?.close();
    await v?.close();
    github.server.close();
    await dropSchema(schema);
  });

  const isCallback = (location: string) => location.startsWith(`${base}/oauth2/github/callback`);
  const json = (page: Page) => JSON.parse(page.body) as { code?: string; message?: string };

  async function toCallback(browser: BrowserLike, account: GithubAccount): Promise<string> {
    github.signedIn.account = account;
    const { stoppedAt, page } = await browser.follow(`${base}/oauth2/github/authorize?return_to=${encodeURIComponent(appUrl)}`, isCallback);
    if (!stoppedAt) throw new Error(`no callback: ${page.status} ${page.body}`);
    return stoppedAt;
  }

  it("a verified primary email in an allowed domain signs in: cookie, provisioned user, numeric GitHub id as the subject", async () => {
    const browser = new BrowserLike();
    const octo: GithubAccount = { id: 583231, login: "octocat", emails: [{ email: "octo@example.com", primary: true, verified: true }] };
    const landed = await browser.request(await toCallback(browser, octo));
    expect(landed.status, landed.body).toBe(303);
    expect(landed.headers.get("location")).toBe(appUrl);
    const answer = await decision.check({ credential: browser.cookie(base, "verdict_session")!, action: "read:orders", tenant: "acme" });
    expect(answer.allowed).toBe(true);
    const identities = await admin.listLinkedIdentities({ user: answer.principal!.userId }, ROOT);
    expect(identities.identities.map((i) => [i.provider, i.subject, i.email])).toEqual([["github", "583231", "octo@example.com"]]);
  });

  it("no account for an unverified email, nor for one outside the allowed domains", async () => {
    for (const emails of [[{ email: "mallory@example.com", primary: true, verified: false }], [{ email: "mallory@elsewhere.org", primary: true, verified: true }]]) {
      const browser = new BrowserLike();
      const page = await browser.request(await toCallback(browser, { id: 666, login: "mallory", emails }));
      expect([page.status, json(page).code]).toEqual([403, "email_domain_not_allowed"]);
    }
    expect(await v.store.identities.getLinkedIdentity("github", "666")).toBeUndefined();
  });

  it("a reused code and a code taken by another sign-in (wrong PKCE verifier) are refused as GitHub's refusal", async () => {
    const account: GithubAccount = { id: 7, login: "seven", emails: [{ email: "seven@example.com", primary: true, verified: true }] };
    const browser = new BrowserLike();
    const first = await toCallback(browser, account);
    expect((await browser.request(first)).status).toBe(303);
    const second = new URL(await toCallback(browser, account));
    const reused = new URL(first);
    reused.searchParams.set("state", second.searchParams.get("state")!);
    const again = await browser.request(reused.href);
    expect([again.status, json(again).code]).toEqual([400, "code_exchange_refused"]);
    expect(json(again).message).toContain("bad_verification_code");

    const victim = new URL(await toCallback(new BrowserLike(), account));
    const attacker = new BrowserLike();
    const own = new URL(await toCallback(attacker, account));
    victim.searchParams.set("state", own.searchParams.get("state")!);
    const injected = await attacker.request(victim.href);
    expect([injected.status, json(injected).code]).toEqual([400, "code_exchange_refused"]);
  });
});
