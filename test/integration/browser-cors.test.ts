/**
 * CORS from a real browser: headless Chromium (Debian's, driven by playwright-core) loads a page
 * from another origin whose script (test/fixtures/browser/check-page.ts, bundled by Vite) calls
 * Check through @connectrpc/connect-web. A page on an allowed origin gets its answer; a page on any
 * other origin is refused by the browser. Plus the headers themselves, read with plain HTTP.
 */
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type { Browser } from "playwright-core";
import { launchChromium } from "../helpers/chromium.js";
import { build } from "vite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import type { PageResult } from "../fixtures/browser/check-page.js";
import { grpcClient } from "../helpers/grpc.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const ROOT = { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString("base64")}` };

/** Bundles the page script for the browser (ES module, every import inlined). */
async function bundlePage(): Promise<string> {
  const root = path.resolve(import.meta.dirname, "../..");
  const out = await build({
    configFile: false,
    logLevel: "warn",
    root,
    build: { write: false, minify: false, lib: { entry: path.join(root, "test/fixtures/browser/check-page.ts"), formats: ["es"], fileName: "page" } },
  });
  const chunk = (Array.isArray(out) ? out[0] : out) as { output: Array<{ fileName: string; code?: string }> };
  return chunk.output.find((o) => o.fileName.endsWith(".js"))!.code!;
}

/** A static server for the page on its own origin (http://127.0.0.1:port). */
async function servePage(script: string): Promise<{ origin: string; server: Server }> {
  const server = createServer((req, res) => {
    if (req.url === "/page.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      res.end(script);
      return;
    }
    res.writeHead(200, { "content-type": "text/html" });
    res.end('<!doctype html><title>page</title><script type="module" src="/page.js"></script>');
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe("CORS: a browser page on another origin calls Check with connect-web", () => {
  const schema = freshSchema();
  let browser: Browser;
  let allowedPage: { origin: string; server: Server };
  let otherPage: { origin: string; server: Server };
  let withCredentials: Awaited<ReturnType<typeof startTestVerdict>>;
  let withoutCredentials: Awaited<ReturnType<typeof startTestVerdict>>;
  let noCors: Awaited<ReturnType<typeof startTestVerdict>>;
  let key = "";

  /** Loads `page` in the browser and runs one Check from it against `baseUrl`. */
  const checkFrom = async (pageOrigin: string, baseUrl: string, withCookies = false): Promise<PageResult> => {
    const tab = await browser.newPage();
    try {
      await tab.goto(`${pageOrigin}/`);
      await tab.waitForFunction(() => "verdictCheck" in globalThis);
      return await tab.evaluate(
        ([url, credential, cookies]) =>
          (globalThis as unknown as { verdictCheck(u: string, c: string, k: boolean): Promise<PageResult> }).verdictCheck(url, credential, cookies),
        [baseUrl, key, withCookies] as const,
      );
    } finally {
      await tab.close();
    }
  };

  beforeAll(async () => {
    const script = await bundlePage();
    allowedPage = await servePage(script);
    otherPage = await servePage(script);
    const shared = { DATABASE_URL: TEST_DATABASE_URL, VERDICT_CORS_ORIGINS: `https://elsewhere.example, ${allowedPage.origin}` };
    withCredentials = await startTestVerdict({ ...shared, VERDICT_CORS_ALLOW_CREDENTIALS: "true" }, schema);
    withoutCredentials = await startTestVerdict(shared, schema);
    noCors = await startTestVerdict({ DATABASE_URL: TEST_DATABASE_URL }, schema);
    const admin = grpcClient(AdminService, withCredentials.grpcAddress);
    await admin.createTenant({ id: "acme" }, ROOT);
    await admin.createUser({ username: "alice", password: "alice-password-1" }, ROOT);
    await admin.grant({ tenant: "acme", statement: "GRANT READ TO alice" }, ROOT);
    const created = await admin.createApiKey({ name: "page", owner: "alice" }, ROOT);
    admin.close();
    key = created.secret;
    for (const v of [withoutCredentials, noCors]) await v.engine.waitForVersion(Number(created.version), 15_000);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    for (const v of [withCredentials, withoutCredentials, noCors]) await v?.close();
    for (const p of [allowedPage, otherPage]) p?.server.close();
    await dropSchema(schema);
  });

  it("answers a page on an allowed origin", async () => {
    expect(await checkFrom(allowedPage.origin, withCredentials.httpBase)).toEqual({ allowed: true, reason: "ALLOWED" });
    expect(await checkFrom(allowedPage.origin, withoutCredentials.httpBase)).toEqual({ allowed: true, reason: "ALLOWED" });
  });

  it("lets the allowed page send cookies only with VERDICT_CORS_ALLOW_CREDENTIALS=true", async () => {
    expect(await checkFrom(allowedPage.origin, withCredentials.httpBase, true)).toEqual({ allowed: true, reason: "ALLOWED" });
    expect(await checkFrom(allowedPage.origin, withoutCredentials.httpBase, true)).toEqual({ error: expect.stringMatching(/fetch/i) });
  });

  it("is refused by the browser for a page on any other origin, and for every page when CORS is off", async () => {
    expect(await checkFrom(otherPage.origin, withCredentials.httpBase)).toEqual({ error: expect.stringMatching(/fetch/i) });
    expect(await checkFrom(allowedPage.origin, noCors.httpBase)).toEqual({ error: expect.stringMatching(/fetch/i) });
  });

  it("answers the preflight of an allowed origin with the headers Connect needs, and nothing to others", async () => {
    const preflight = (base: string, origin: string) =>
      fetch(`${base}/verdict.v1.DecisionService/Check`, {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type,connect-protocol-version" },
      });
    const ok = await preflight(withCredentials.httpBase, allowedPage.origin);
    expect(ok.status).toBe(204);
    expect(ok.headers.get("access-control-allow-origin")).toBe(allowedPage.origin);
    expect(ok.headers.get("access-control-allow-credentials")).toBe("true");
    expect(ok.headers.get("access-control-allow-methods")).toBe("POST, GET");
    const headers = ok.headers.get("access-control-allow-headers")!.toLowerCase().split(", ");
    for (const h of ["content-type", "connect-protocol-version", "connect-timeout-ms", "x-grpc-web", "x-user-agent", "authorization", "x-api-key"]) expect(headers).toContain(h);
    expect(ok.headers.get("vary")).toContain("Origin");

    const refused = await preflight(withCredentials.httpBase, otherPage.origin);
    expect(refused.status).toBe(403);
    expect(refused.headers.get("access-control-allow-origin")).toBeNull();
    expect((await preflight(withoutCredentials.httpBase, allowedPage.origin)).headers.get("access-control-allow-credentials")).toBeNull();
    expect((await preflight(noCors.httpBase, allowedPage.origin)).headers.get("access-control-allow-origin")).toBeNull();

    const call = await fetch(`${withCredentials.httpBase}/verdict.v1.DecisionService/Check`, {
      method: "POST",
      headers: { origin: allowedPage.origin, "content-type": "application/json" },
      body: JSON.stringify({ credential: key, action: "read:orders", tenant: "acme" }),
    });
    expect(call.headers.get("access-control-allow-origin")).toBe(allowedPage.origin);
    expect(call.headers.get("access-control-expose-headers")).toContain("Grpc-Status");
  });
});
