/**
 * A browser's Verdict session as two cookies, set by a sign-in's callback (with return_to),
 * renewed by POST /oauth2/refresh and cleared by POST /oauth2/logout:
 *
 * - the session cookie (VERDICT_SESSION_COOKIE_NAME): the session's access token, Path=/,
 *   SameSite=Lax, for as long as the token lives; Check, ext_authz and the HTTP API read it;
 * - the refresh cookie (`<name>_refresh`): the session's refresh token, Path=/oauth2/ under
 *   VERDICT_PUBLIC_URL's path, SameSite=Strict, always host-only, for as long as the refresh token
 *   lives. Only Verdict's sign-in routes receive it, never the API, Check, ext_authz or an app
 *   behind the same host: refresh rotates it, and logout revokes its session even once the access
 *   cookie has expired.
 *
 * Refresh presents the refresh token exactly as AuthService.Refresh does (session-refresh.ts):
 * a reused token revokes its session, a revoked or expired session stays dead. Both routes refuse
 * requests from untrusted origins (request-origin.ts). Every store lookup of a presented token
 * counts against the client address's budget of failures as the RPCs' do (token-lookups.ts):
 * past it, 429 with Retry-After and the cookies kept. No token value reaches a response body, a
 * log line or a metric label; every failure answers JSON {code, message}, never a 500.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { OAuthSettings } from "../../config/config.js";
import type { Engine } from "../../engine/engine.js";
import type { TokenAuthority } from "../../engine/token-authority.js";
import type { Logger } from "../../observability/logger.js";
import type { Metrics } from "../../observability/metrics.js";
import type { SessionRecord, Store } from "../../store/store.js";
import type * as pb from "../../../gen/verdict/v1/auth_pb.js";
import type { RefreshSession } from "../session-refresh.js";
import { cookieHeader, readCookie } from "../session-cookie.js";
import { REFRESH_TOKEN, hashRefreshToken } from "../session-tokens.js";
import { type TokenLookups, retryAfterSeconds, tooManyTokenFailures } from "../token-lookups.js";
import type { OriginCheck } from "./request-origin.js";

/** What createBrowserSession needs. */
export interface BrowserSessionOptions {
  readonly settings: OAuthSettings;
  readonly store: Store;
  readonly engine: Engine;
  readonly tokens: TokenAuthority;
  readonly refreshSession: RefreshSession;
  /** Whether a request comes from a page trusted with the cookies. */
  readonly originCheck: OriginCheck;
  /** The credential a request presents (bearer, API key header, else the session cookie), as the RPCs find it. */
  readonly credentialOf: (req: IncomingMessage) => string;
  /** Sign-out's store lookups, under each client address's budget of failures (shared with Refresh and the RPCs). */
  readonly lookups: TokenLookups;
  /** What the budgets count a request as: its client address's bucket (createClientBucket). */
  readonly clientBucket: (req: IncomingMessage) => string;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly now?: () => number;
}

/** The cookie side of a browser's session. */
export interface BrowserSession {
  /** The Set-Cookie values that hand `tokens` to the browser (session and refresh cookies). */
  cookies(tokens: pb.TokenPair): string[];
  /** POST /oauth2/refresh. */
  refresh(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** POST /oauth2/logout. */
  logout(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

/**
 * The path of Verdict's sign-in routes as browsers see them: /oauth2/ under the path of
 * VERDICT_PUBLIC_URL (Verdict served under a prefix by a proxy), so that cookies scoped to it reach
 * those routes and nothing else.
 */
export function oauthCookiePath(publicUrl: string): string {
  const prefix = publicUrl === "" ? "" : new URL(publicUrl).pathname.replace(/\/+$/, "");
  return `${prefix}/oauth2/`;
}

/** A refusal of the cookie routes: a stable code, an HTTP status, and whether the cookies go. */
class SessionRefusal extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    readonly clearCookies = false,
    readonly retryAfterSeconds = 0,
  ) {
    super(message);
    this.name = "SessionRefusal";
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function sendJson(res: ServerResponse, status: number, body: unknown, cookies: string[], extra: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store", ...(cookies.length ? { "set-cookie": cookies } : {}), ...extra });
  res.end(`${JSON.stringify(body)}\n`);
}

/** Creates the cookie routes. */
export function createBrowserSession(options: BrowserSessionOptions): BrowserSession {
  const { settings, store, engine, tokens, refreshSession, originCheck, metrics, lookups, clientBucket } = options;
  const now = options.now ?? Date.now;
  const log = options.logger.child({ component: "oauth" });
  const cookie = settings.cookie;
  const refreshName = `${cookie.name}_refresh`;
  const refreshPath = oauthCookiePath(settings.publicUrl);
  const refreshAttributes = { sameSite: "strict", hostOnly: true } as const;
  const cleared = () => [cookieHeader(cookie, cookie.name, "/", "", 0), cookieHeader(cookie, refreshName, refreshPath, "", 0, refreshAttributes)];

  function requireTrustedOrigin(req: IncomingMessage): void {
    if (!originCheck({ origin: header(req, "origin"), secFetchSite: header(req, "sec-fetch-site") })) {
      throw new SessionRefusal("cross_origin", "this request comes from a page whose origin is not trusted with the session (VERDICT_PUBLIC_URL, or VERDICT_CORS_ORIGINS with credentials)", 403);
    }
  }

  /** Answers a failure of `route`: a refusal with its code, anything else as 503 (logged, never its text). */
  function fail(res: ServerResponse, route: "refresh" | "logout", error: unknown): void {
    const refusal =
      error instanceof SessionRefusal
        ? error
        : new SessionRefusal("unavailable", `the session could not be ${route === "refresh" ? "refreshed" : "signed out"} now; try again`, 503);
    if (refusal.code === "unavailable") log.error(`session ${route} failed`, { code: refusal.code, error: error instanceof SessionRefusal ? error.message : `${(error as Error)?.name}: ${(error as Error)?.message}` });
    // A signed-out page asking for a refresh is routine, and a flood's refusals are counted in the metric: logged only at debug.
    else if (refusal.code === "session_missing" || refusal.code === "rate_limited") log.debug(`session ${route} refused`, { code: refusal.code });
    else log.info(`session ${route} refused`, { code: refusal.code });
    metrics.sessionCookieRequests.labels(route, refusal.code).inc();
    const retry = refusal.status === 503 ? { "retry-after": "1" } : refusal.retryAfterSeconds > 0 ? { "retry-after": String(refusal.retryAfterSeconds) } : undefined;
    sendJson(res, refusal.status, { code: refusal.code, message: refusal.message }, refusal.clearCookies ? cleared() : [], retry);
  }

  const tooManyFailures = (retryAfterMs: number) => new SessionRefusal("rate_limited", tooManyTokenFailures(retryAfterMs), 429, false, retryAfterSeconds(retryAfterMs));

  function cookies(pair: pb.TokenPair): string[] {
    return [
      // expiresIn is whole seconds rounded down: a token with less than one left must not get Max-Age=0 (deleted at once).
      cookieHeader(cookie, cookie.name, "/", pair.accessToken, Math.max(1, Number(pair.expiresIn))),
      cookieHeader(cookie, refreshName, refreshPath, pair.refreshToken, Number(pair.refreshExpiresIn), refreshAttributes),
    ];
  }

  return {
    cookies,

    async refresh(req, res) {
      try {
        requireTrustedOrigin(req);
        if (!engine.ready) throw new SessionRefusal("unavailable", "the policy is not loaded yet; try again shortly", 503);
        const presented = readCookie(req.headers.cookie, refreshName);
        if (presented === "") throw new SessionRefusal("session_missing", "no refresh cookie: sign in", 401);
        const result = await refreshSession(presented, "cookie", clientBucket(req));
        if (result.kind === "limited") throw tooManyFailures(result.retryAfterMs);
        if (result.kind === "reused") {
          throw new SessionRefusal("session_reused", "this refresh cookie was already used; its session is revoked: sign in again", 401, true);
        }
        if (result.kind === "invalid") throw new SessionRefusal("session_invalid", "the session is expired, revoked or unknown: sign in again", 401, true);
        metrics.sessionCookieRequests.labels("refresh", "refreshed").inc();
        const pair = result.tokens;
        sendJson(res, 200, { expiresIn: Number(pair.expiresIn), refreshExpiresIn: Number(pair.refreshExpiresIn) }, cookies(pair));
      } catch (error) {
        fail(res, "refresh", error);
      }
    },

    async logout(req, res) {
      try {
        requireTrustedOrigin(req);
        const credential = options.credentialOf(req);
        const verified = credential === "" ? undefined : await tokens.verify(credential, now());
        const sessionId = verified?.ok && verified.claims.own ? verified.claims.sessionId : "";
        // The refresh cookie outlives the access token: its session is found even when the session cookie has expired.
        const refresh = readCookie(req.headers.cookie, refreshName);
        const byRefresh = REFRESH_TOKEN.test(refresh);
        let found: SessionRecord[] = [];
        if (sessionId !== "" || byRefresh) {
          const looked = await lookups("logout", clientBucket(req), async () => {
            const sessions = sessionId === "" ? [] : await store.getSessions([sessionId]);
            const session = byRefresh ? await store.findSessionByRefreshHash(hashRefreshToken(refresh)) : undefined;
            if (session && !sessions.some((s) => s.id === session.id)) sessions.push(session);
            const nowMs = now();
            return { good: sessions.some((s) => s.revokedAtMs === 0 && s.expiresAtMs > nowMs), value: sessions };
          });
          if (looked.limited) throw tooManyFailures(looked.retryAfterMs);
          found = looked.value;
        }
        for (const session of found) {
          if (session.revokedAtMs !== 0) continue;
          const { version } = await store.revokeSession(session.id, now(), "logout", { userId: session.userId });
          await engine.commit(version);
          log.info("signed out", { session: session.id, user: session.userId, version });
        }
        metrics.sessionCookieRequests.labels("logout", "signed_out").inc();
        res.writeHead(204, { "cache-control": "no-store", "set-cookie": cleared() });
        res.end();
      } catch (error) {
        fail(res, "logout", error);
      }
    },
  };
}
