/**
 * The cookie routes when what stands behind them fails (the database, the policy not loaded):
 * 503 unavailable with Retry-After, cookies left as they are so that the page may try again, the
 * cause in the log without the token, never a 500. Served over a loopback HTTP server.
 */
import { type Server, createServer } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { createBrowserSession } from "../../src/api/oauth/browser-session.js";
import { createOriginCheck } from "../../src/api/oauth/request-origin.js";
import type { RefreshSession } from "../../src/api/session-refresh.js";
import { createTokenLookups } from "../../src/api/token-lookups.js";
import { createTokenLimiter } from "../../src/authn/token-limiter.js";
import type { OAuthSettings } from "../../src/config/config.js";
import type { Engine } from "../../src/engine/engine.js";
import type { TokenAuthority } from "../../src/engine/token-authority.js";
import { createLogger } from "../../src/observability/logger.js";
import { createMetrics } from "../../src/observability/metrics.js";
import type { Store } from "../../src/store/store.js";

const TOKEN = `vrt_${"a".repeat(43)}`;
const settings = { publicUrl: "https://verdict.example.com", cookie: { name: "verdict_session", secure: true, domain: "" } } as OAuthSettings;
const down = () => Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:5432"));

describe("cookie routes when the store fails", () => {
  let server: Server | undefined;
  afterEach(() => server?.close());

  async function serve(options: { ready?: boolean; refreshSession?: RefreshSession; store?: Partial<Store> }) {
    const lines: string[] = [];
    const metrics = createMetrics();
    const session = createBrowserSession({
      settings,
      store: (options.store ?? {}) as Store,
      engine: { ready: options.ready ?? true } as Engine,
      tokens: { verify: () => Promise.resolve({ ok: false }) } as unknown as TokenAuthority,
      refreshSession: options.refreshSession ?? down,
      originCheck: createOriginCheck(["https://verdict.example.com"]),
      credentialOf: () => "",
      lookups: createTokenLookups({ limiter: createTokenLimiter({ maxFailuresPerAddress: 30, windowMs: 300_000 }), metrics }),
      clientBucket: () => "127.0.0.1",
      metrics,
      logger: createLogger("debug", {}, (line) => void lines.push(line)),
    });
    server = createServer((req, res) => void (req.url === "/oauth2/refresh" ? session.refresh(req, res) : session.logout(req, res)));
    await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const post = (path: string) =>
      fetch(`${base}${path}`, { method: "POST", headers: { origin: "https://verdict.example.com", cookie: `verdict_session_refresh=${TOKEN}` } });
    return { post, lines };
  }

  it("refresh: the store failing answers 503 unavailable, keeps the cookies and logs the cause without the token", async () => {
    const { post, lines } = await serve({});
    const res = await post("/oauth2/refresh");
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(res.headers.getSetCookie()).toEqual([]);
    expect(await res.json()).toMatchObject({ code: "unavailable" });
    expect(lines.join("\n")).toContain("ECONNREFUSED");
    expect(lines.join("\n")).not.toContain(TOKEN);
  });

  it("refresh: the policy not loaded yet answers 503 before the token is presented", async () => {
    let presented = false;
    const { post } = await serve({ ready: false, refreshSession: () => ((presented = true), down()) });
    const res = await post("/oauth2/refresh");
    expect([res.status, ((await res.json()) as { code: string }).code]).toEqual([503, "unavailable"]);
    expect(presented).toBe(false);
  });

  it("logout: the store failing answers 503 and clears no cookie, so the page can sign out again", async () => {
    const { post } = await serve({ store: { findSessionByRefreshHash: down } });
    const res = await post("/oauth2/logout");
    expect([res.status, ((await res.json()) as { code: string }).code]).toEqual([503, "unavailable"]);
    expect(res.headers.getSetCookie()).toEqual([]);
  });
});
