/**
 * The sign-in routes on the HTTP port:
 *
 * - GET /oauth2/{provider}/authorize?return_to=...[&link=true]: redirects to the provider with
 *   state, nonce and an S256 PKCE challenge; the state, nonce and verifier are kept in the database
 *   (single use, short TTL) so any replica can finish, and the state is bound to this browser by a
 *   short-lived cookie (a sign-in started elsewhere cannot be finished here). Each stores a row, so
 *   a client address may leave only so many unfinished (429 beyond), and the table keeps at most
 *   so many (the oldest go).
 * - GET /oauth2/{provider}/callback: checks the state, exchanges the code, signs the identity in,
 *   then sets the session's cookies and redirects to return_to, or answers the tokens as JSON.
 *   Looking the state up costs a store round trip (and a known one a request to the provider),
 *   so a callback that does not sign in counts against its client address's budget of failures
 *   (token-lookups.ts; 429 beyond).
 * - POST /oauth2/refresh: rotates the session of the refresh cookie and sets both cookies anew.
 * - POST /oauth2/logout: revokes the session of the cookies (or bearer token) and clears them.
 *   (These two: browser-session.ts.)
 *
 * Failures answer JSON {code, message} with a stable code; no secret, code, verifier or token
 * reaches a response, a log line or a metric label.
 */
import { toJson } from "@bufbuild/protobuf";
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AttemptCounter } from "../../authn/attempt-counter.js";
import type { OAuthProviderSettings, OAuthSettings } from "../../config/config.js";
import type { Engine } from "../../engine/engine.js";
import type { TokenAuthority } from "../../engine/token-authority.js";
import type { Logger } from "../../observability/logger.js";
import type { Metrics } from "../../observability/metrics.js";
import type { Store } from "../../store/store.js";
import { TokenPairSchema } from "../../../gen/verdict/v1/auth_pb.js";
import { presentedCredential } from "../presented-credential.js";
import type { CallContext } from "../rpc.js";
import { cookieHeader, readCookie } from "../session-cookie.js";
import type { RefreshSession } from "../session-refresh.js";
import { type TokenLookups, retryAfterSeconds, tooManyTokenFailures } from "../token-lookups.js";
import { createBrowserSession, oauthCookiePath } from "./browser-session.js";
import { type ProviderClient, SignInError, type StartedAuthorization, createProviderClient } from "./providers.js";
import { createOriginCheck } from "./request-origin.js";
import { allowedReturnUrl } from "./return-url.js";
import type { SignIn } from "./sign-in.js";

/** What createOAuthRoutes needs. */
export interface OAuthRoutesOptions {
  readonly settings: OAuthSettings;
  readonly store: Store;
  readonly engine: Engine;
  readonly tokens: TokenAuthority;
  readonly signIn: SignIn;
  /** Refresh's rule (shared with AuthService.Refresh), for the refresh cookie. */
  readonly refreshSession: RefreshSession;
  /** Origins whose pages may use the cookie routes (refresh, logout): trustedOrigins() of request-origin.ts. */
  readonly trustedOrigins: readonly string[];
  readonly metrics: Metrics;
  readonly logger: Logger;
  /**
   * Where sign-ins started per client address are counted (shared by the fleet when it is Redis's):
   * at most settings.authorizeMaxPerAddress unfinished per settings.stateTtlMs.
   */
  readonly signInStarts: AttemptCounter;
  /** What the per-address count takes a request as: its client address's bucket (createClientBucket; an IPv6 client by its /64). */
  readonly clientBucket: (ctx: CallContext) => string;
  /** Store lookups of presented secrets (callback states, refresh cookies), under each client address's budget of failures. */
  readonly lookups: TokenLookups;
  /** The fetch used towards providers (tests may wrap it). */
  readonly fetch?: typeof globalThis.fetch;
  readonly now?: () => number;
}

/** The sign-in routes. */
export interface OAuthRoutes {
  /** Serves a request under /oauth2/; false when the path is not one of these routes. */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
}

const ROUTE = /^\/oauth2\/([a-z0-9][a-z0-9-]{0,31})\/(authorize|callback)$/;

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function sendJson(res: ServerResponse, status: number, body: unknown, cookies: string[] = [], retryAfterSeconds = 0): void {
  res.writeHead(status, {
    "content-type": "application/json",
    "cache-control": "no-store",
    ...(cookies.length ? { "set-cookie": cookies } : {}),
    ...(retryAfterSeconds > 0 ? { "retry-after": String(retryAfterSeconds) } : {}),
  });
  res.end(`${JSON.stringify(body)}\n`);
}

/** The request as the client-bucket function reads a call. */
function callContext(req: IncomingMessage): CallContext {
  return {
    peer: req.socket.remoteAddress ?? "",
    header(name) {
      const value = req.headers[name];
      return Array.isArray(value) ? value.join(", ") : value;
    },
  };
}

/** Between two warnings that the pending table is full. */
const FULL_WARNING_INTERVAL_MS = 60_000;

function redirect(res: ServerResponse, status: 302 | 303, location: string, cookies: string[]): void {
  res.writeHead(status, { location, "cache-control": "no-store", "set-cookie": cookies });
  res.end();
}

/** Creates the routes over the configured providers. */
export function createOAuthRoutes(options: OAuthRoutesOptions): OAuthRoutes {
  const { settings, store, engine, tokens, signIn, metrics, signInStarts, lookups } = options;
  const now = options.now ?? Date.now;
  const log = options.logger.child({ component: "oauth" });
  const providers = new Map<string, ProviderClient>(
    settings.providers.map((p) => [p.id, createProviderClient(p, { publicUrl: settings.publicUrl, fetch: options.fetch })]),
  );
  const cookie = settings.cookie;
  const flowCookie = `${cookie.name}_flow`;
  // The callback's path as the browser sees it (under VERDICT_PUBLIC_URL's path), so that the flow cookie comes back to it.
  const flowPath = oauthCookiePath(settings.publicUrl);
  const stateTtlSeconds = Math.floor(settings.stateTtlMs / 1000);
  const clearFlow = () => cookieHeader(cookie, flowCookie, flowPath, "", 0);
  const clientBucket = (req: IncomingMessage) => options.clientBucket(callContext(req));
  const startsKey = (req: IncomingMessage) => `oauth-authorize\u0000${clientBucket(req)}`;
  let lastFullWarningMs = -Infinity;
  const browserSession = createBrowserSession({
    settings,
    store,
    engine,
    tokens,
    refreshSession: options.refreshSession,
    originCheck: createOriginCheck(options.trustedOrigins),
    credentialOf,
    lookups,
    clientBucket,
    metrics,
    logger: options.logger,
    now,
  });

  function fail(res: ServerResponse, provider: string, error: unknown, cookies: string[] = []): void {
    const e =
      error instanceof SignInError
        ? error
        : new SignInError("internal", "the sign-in could not be completed; try again", 500);
    metrics.oauthSignIns.labels(provider, e.code).inc();
    // A flood's refusals, and a provider's failure answered again without asking it (with Retry-After), are counted in the metric, not written one log line each.
    if (e.status === 429 || e.retryAfterSeconds > 0) log.debug("sign-in refused", { provider, code: e.code, message: e.message });
    else if (e.status >= 500) log.error("sign-in failed", { provider, code: e.code, error: error instanceof SignInError ? e.message : `${(error as Error)?.name}: ${(error as Error)?.message}` });
    else log.info("sign-in refused", { provider, code: e.code, message: e.message });
    sendJson(res, e.status, { code: e.code, message: e.message }, cookies, e.retryAfterSeconds);
  }

  /** The credential a request presents (a bearer token, else an API key header, else the session cookie), as the RPC services find it. */
  function credentialOf(req: IncomingMessage): string {
    return presentedCredential({
      header: (name) => {
        const value = req.headers[name];
        return Array.isArray(value) ? value[0] : value;
      },
      sessionCookie: () => readCookie(req.headers.cookie, cookie.name),
    });
  }

  /** The user of a Verdict session presented as the cookie or a bearer token, for linking. */
  async function signedInUser(req: IncomingMessage): Promise<string> {
    const credential = credentialOf(req);
    if (credential === "") throw new SignInError("link_requires_session", "linking an identity needs a signed-in session (cookie or bearer token)", 401);
    // Only Verdict's own session tokens: an external issuer's token must not make a lasting link.
    const verified = await tokens.verify(credential, now());
    if (!verified.ok || !verified.claims.own || verified.claims.sessionId === "") {
      throw new SignInError("link_requires_session", "linking an identity needs a Verdict session (cookie or bearer access token)", 401);
    }
    const result = await tokens.authenticate(credential, now());
    if (!result.ok) throw new SignInError("link_requires_session", `the session was refused: ${result.reason}`, 401);
    // A linked identity signs in unscoped and for good: a credential limited to one tenant must not mint that.
    if (result.tenant) throw new SignInError("link_requires_unscoped_session", `a session limited to tenant ${result.tenant} cannot link an identity; sign in without a tenant`, 403);
    const user = engine.current.getUser(result.userId);
    if (!user || user.disabled) throw new SignInError("link_requires_session", "the signed-in user is unknown or disabled", 401);
    return user.id;
  }

  async function authorize(req: IncomingMessage, res: ServerResponse, provider: ProviderClient, query: URLSearchParams): Promise<void> {
    const settingsOf: OAuthProviderSettings = provider.settings;
    const rawReturn = query.get("return_to");
    let returnTo = "";
    if (rawReturn !== null) {
      returnTo = allowedReturnUrl(rawReturn, settingsOf.returnUrls) ?? "";
      if (returnTo === "") throw new SignInError("invalid_return_to", "return_to is not one of the allowed return URLs");
    }
    const link = query.get("link");
    if (link !== null && link !== "true") throw new SignInError("invalid_request", "link must be true or absent");
    // Every start stores a row until its callback or expiry: an address may leave only so many unfinished.
    const key = startsKey(req);
    const count = await signInStarts.take(key, settings.authorizeMaxPerAddress, settings.stateTtlMs, now());
    if (!count.counted) {
      const seconds = Math.max(1, Math.ceil((count.resetAtMs - now()) / 1000));
      throw new SignInError("rate_limited", `too many sign-ins started from this address; retry in ${seconds} s`, 429, seconds);
    }
    let started: StartedAuthorization;
    let dropped: number;
    try {
      const linkUserId = link === "true" ? await signedInUser(req) : "";
      started = await provider.start();
      const nowMs = now();
      dropped = await store.identities.savePendingAuthorization(
        {
          stateHash: sha256(started.state),
          provider: settingsOf.id,
          nonce: started.nonce,
          codeVerifier: started.codeVerifier,
          returnTo,
          linkUserId,
          expiresAtMs: nowMs + settings.stateTtlMs,
        },
        nowMs,
        settings.maxPending,
      );
    } catch (error) {
      // Nothing was stored: the start does not count.
      await signInStarts.giveBack(key, now());
      throw error;
    }
    if (dropped > 0) {
      metrics.oauthPendingDropped.inc(dropped);
      if (now() - lastFullWarningMs >= FULL_WARNING_INTERVAL_MS) {
        lastFullWarningMs = now();
        log.warn("pending sign-ins at VERDICT_OAUTH_MAX_PENDING: dropping the oldest", { maxPending: settings.maxPending, dropped });
      }
    }
    metrics.oauthSignIns.labels(settingsOf.id, "started").inc();
    redirect(res, 302, started.url.href, [cookieHeader(cookie, flowCookie, flowPath, started.state, stateTtlSeconds)]);
  }

  async function callback(req: IncomingMessage, res: ServerResponse, provider: ProviderClient, query: URLSearchParams): Promise<void> {
    const id = provider.settings.id;
    const state = query.get("state") ?? "";
    if (state === "") throw new SignInError("state_missing", "the callback has no state");
    const bound = readCookie(req.headers.cookie, flowCookie);
    if (bound === "" || !sameText(bound, state)) throw new SignInError("state_invalid", "the state does not belong to a sign-in started in this browser");
    // Only a sign-in gives the attempt back: an unknown state, a refused code, a refused identity stay counted.
    const looked = await lookups("sign_in_callback", clientBucket(req), async () => {
      const pending = await store.identities.takePendingAuthorization(sha256(state), now());
      // Its row is gone: the start no longer counts against the address (a finished sign-in gives its place back).
      if (pending) await signInStarts.giveBack(startsKey(req), now());
      if (!pending || pending.provider !== id) throw new SignInError("state_invalid", "the state is unknown, already used or expired");
      const identity = await provider.finish(query, { state, nonce: pending.nonce, codeVerifier: pending.codeVerifier });
      return { good: true, value: { pending, signedIn: await signIn.signIn(provider.settings, identity, pending.linkUserId) } };
    });
    if (looked.limited) throw new SignInError("rate_limited", tooManyTokenFailures(looked.retryAfterMs), 429, retryAfterSeconds(looked.retryAfterMs));
    const { pending, signedIn } = looked.value;
    metrics.oauthSignIns.labels(id, signedIn.created ? "success_created" : signedIn.linked ? "success_linked" : "success").inc();
    if (pending.returnTo === "") {
      sendJson(res, 200, { tokens: toJson(TokenPairSchema, signedIn.tokens) }, [clearFlow()]);
      return;
    }
    redirect(res, 303, pending.returnTo, [...browserSession.cookies(signedIn.tokens), clearFlow()]);
  }

  return {
    handle(req, res) {
      // An absolute-form target such as "http://[/oauth2/..." is not a URL: not one of these routes (404), never a throw out of the request handler.
      let url: URL;
      try {
        url = new URL(req.url ?? "/", "http://verdict.invalid");
      } catch {
        return false;
      }
      if (url.pathname === "/oauth2/logout" || url.pathname === "/oauth2/refresh") {
        const logout = url.pathname === "/oauth2/logout";
        if (req.method !== "POST") {
          sendJson(res, 405, { code: "method_not_allowed", message: logout ? "sign out with POST" : "refresh with POST" });
          return true;
        }
        (logout ? browserSession.logout(req, res) : browserSession.refresh(req, res)).catch((error: unknown) => log.error("session route failed", { path: url.pathname, error }));
        return true;
      }
      const m = ROUTE.exec(url.pathname);
      if (!m) return false;
      const provider = providers.get(m[1]);
      const label = provider ? m[1] : "unknown";
      if (req.method !== "GET") {
        sendJson(res, 405, { code: "method_not_allowed", message: "use GET" });
        return true;
      }
      if (!provider) {
        fail(res, label, new SignInError("unknown_provider", "no such identity provider is configured", 404));
        return true;
      }
      const run = m[2] === "authorize" ? authorize(req, res, provider, url.searchParams) : callback(req, res, provider, url.searchParams);
      run.catch((error: unknown) => fail(res, label, error, m[2] === "callback" ? [clearFlow()] : []));
      return true;
    },
  };
}
