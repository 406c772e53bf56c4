/**
 * AuthService: Login, Refresh, Logout, GetJwks and RotateSigningKey. Every session change commits
 * in the store with a "session" change-log entry, is applied here before the call returns and is
 * announced to the other replicas, so a revocation holds at the next Check on every replica.
 */
import { create } from "@bufbuild/protobuf";
import { randomUUID } from "node:crypto";
import { MAX_PASSWORD_LENGTH } from "../authn/password.js";
import { ALL_TENANTS } from "../core/model.js";
import { isValidTenantId, MAX_NAME_LENGTH } from "../core/names.js";
import type { Engine } from "../engine/engine.js";
import type { TokenAuthority } from "../engine/token-authority.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { Actor, SessionRecord, Store } from "../store/store.js";
import * as pb from "../../gen/verdict/v1/auth_pb.js";
import { createCallerAuth } from "./caller-auth.js";
import type { RefreshSession } from "./session-refresh.js";
import { REFRESH_TOKEN, type SessionTokens, hashRefreshToken } from "./session-tokens.js";
import { ApiError } from "./errors.js";
import { type PasswordCheck, tooManyFailures } from "./password-check.js";
import { presentedCredential } from "./presented-credential.js";
import type { CallContext, Handlers } from "./rpc.js";
import { type TokenLookups, tooManyTokenFailures } from "./token-lookups.js";
import { refusingControlCharacters } from "./text-fields.js";

/** Settings of the auth service. */
export interface AuthServiceOptions {
  readonly store: Store;
  readonly engine: Engine;
  readonly tokens: TokenAuthority;
  /** Checks passwords under the login limits (Login and Basic credentials). */
  readonly passwordCheck: PasswordCheck;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Mints the refresh tokens and token pairs of new sessions. */
  readonly sessions: SessionTokens;
  /** Refresh's rule, shared with the browser's refresh cookie. */
  readonly refreshSession: RefreshSession;
  /** Logout's store lookups, under each client address's budget of failures (shared with Refresh). */
  readonly lookups: TokenLookups;
  /** What the budgets count a call as: its client address's bucket (createClientBucket). */
  readonly clientBucket: (ctx: CallContext) => string;
  readonly now?: () => number;
}


/** Creates the AuthService handlers. */
export function createAuthService(options: AuthServiceOptions): Handlers<typeof pb.AuthService> {
  const { store, engine, tokens, passwordCheck, metrics, refreshSession, lookups, clientBucket } = options;
  const now = options.now ?? Date.now;
  const audit = options.logger.child({ component: "audit" });
  const { authorize } = createCallerAuth({ engine, passwordCheck });
  const invalidLogin = () => new ApiError("unauthenticated", "invalid username or password");
  const invalidRefresh = () => new ApiError("unauthenticated", "invalid refresh token");
  const { mintRefreshToken, pair } = options.sessions;

  async function commit(version: number): Promise<bigint> {
    await engine.commit(version);
    return BigInt(version);
  }

  function requireReady(): void {
    if (!engine.ready) throw new ApiError("unavailable", "the policy is not loaded yet; try again shortly");
  }

  /**
   * The session Logout names, found by `find` under the caller's budget: a live one gives the
   * attempt back; none, or one already ended, stays counted.
   */
  async function sessionToEnd(ctx: CallContext, find: () => Promise<SessionRecord | undefined>): Promise<SessionRecord | undefined> {
    const looked = await lookups("logout", clientBucket(ctx), async () => {
      const session = await find();
      return { good: session !== undefined && session.revokedAtMs === 0 && session.expiresAtMs > now(), value: session };
    });
    if (looked.limited) throw new ApiError("resource_exhausted", tooManyTokenFailures(looked.retryAfterMs));
    return looked.value;
  }

  async function revoke(session: SessionRecord, actor: Actor): Promise<bigint> {
    const { version } = await store.revokeSession(session.id, now(), "logout", actor);
    audit.info("session revoked", { session: session.id, user: session.userId, version });
    return commit(version);
  }

  const handlers: Handlers<typeof pb.AuthService> = {
    async login(req, ctx) {
      requireReady();
      if (req.username === "" || req.username.length > MAX_NAME_LENGTH) throw new ApiError("invalid_argument", `username must be 1 to ${MAX_NAME_LENGTH} characters`);
      if (req.password === "" || req.password.length > MAX_PASSWORD_LENGTH) throw new ApiError("invalid_argument", `password must be 1 to ${MAX_PASSWORD_LENGTH} characters`);
      if (req.tenant !== "" && !isValidTenantId(req.tenant)) throw new ApiError("invalid_argument", "tenant must be 1 to 63 of a-z, 0-9, '-', '_'");
      const checked = await passwordCheck(ctx, req.username, req.password);
      if (checked.kind === "limited") {
        metrics.loginAttempts.labels("rate_limited").inc();
        throw tooManyFailures(checked.retryAfterMs);
      }
      if (checked.kind === "wrong") {
        metrics.loginAttempts.labels("failure").inc();
        throw invalidLogin();
      }
      const { user } = checked;
      if (req.tenant !== "") {
        const tenant = engine.current.getTenant(req.tenant);
        const member = tenant && !tenant.disabled && (engine.current.principalFor(user.id, req.tenant)?.roles.length ?? 0) > 0;
        if (!member) {
          metrics.loginAttempts.labels("wrong_tenant").inc();
          throw new ApiError("permission_denied", `not a member of tenant ${req.tenant}`);
        }
      }
      const nowMs = now();
      const refresh = mintRefreshToken(nowMs);
      const session: SessionRecord = {
        id: randomUUID(),
        userId: user.id,
        tenant: req.tenant,
        createdAtMs: nowMs,
        expiresAtMs: refresh.record.expiresAtMs,
        revokedAtMs: 0,
        revokeReason: "",
      };
      const { version } = await store.createSession(session, refresh.record, { userId: user.id });
      metrics.loginAttempts.labels("success").inc();
      audit.info("login", { user: user.id, session: session.id, tenant: req.tenant || ALL_TENANTS, version });
      return create(pb.LoginResponseSchema, { tokens: pair(user, session, refresh.token, await commit(version), nowMs) });
    },

    async refresh(req, ctx) {
      requireReady();
      const result = await refreshSession(req.refreshToken, "api", clientBucket(ctx));
      if (result.kind === "limited") throw new ApiError("resource_exhausted", tooManyTokenFailures(result.retryAfterMs));
      if (result.kind === "reused") throw new ApiError("unauthenticated", "refresh token was already used; its session is revoked, log in again");
      if (result.kind === "invalid") throw invalidRefresh();
      return create(pb.RefreshResponseSchema, { tokens: result.tokens });
    },

    async logout(req, ctx) {
      requireReady();
      if (req.refreshToken !== "") {
        if (!REFRESH_TOKEN.test(req.refreshToken)) throw invalidRefresh();
        const session = await sessionToEnd(ctx, () => store.findSessionByRefreshHash(hashRefreshToken(req.refreshToken)));
        if (!session) throw invalidRefresh();
        return create(pb.LogoutResponseSchema, { version: await revoke(session, { userId: session.userId }) });
      }
      const credential = presentedCredential(ctx);
      if (credential === "") throw new ApiError("unauthenticated", "send the refresh token, or the access token as 'authorization: Bearer <token>'");
      const result = await tokens.verify(credential, now());
      if (!result.ok || !result.claims.own || result.claims.sessionId === "") throw new ApiError("unauthenticated", "invalid access token");
      const { sessionId } = result.claims;
      const session = await sessionToEnd(ctx, async () => (await store.getSessions([sessionId]))[0]);
      if (!session) throw new ApiError("unauthenticated", "invalid access token");
      return create(pb.LogoutResponseSchema, { version: await revoke(session, { userId: session.userId }) });
    },

    getJwks() {
      const keys = tokens.jwks(now()).keys.map((k) => create(pb.JwkSchema, { kty: k.kty, crv: k.crv, x: k.x, y: k.y ?? "", kid: k.kid, alg: k.alg, use: k.use }));
      return create(pb.GetJwksResponseSchema, { keys });
    },

    async rotateSigningKey(req, ctx) {
      const caller = await authorize(ctx, "admin:keys", ALL_TENANTS);
      if (tokens.hs256) throw new ApiError("failed_precondition", "tokens are HS256 with VERDICT_JWT_SECRET: rotate by restarting every replica with a new secret");
      const rotated = await tokens.rotate(req.dropPrevious, caller.actor);
      audit.info("signing key rotated", { kid: rotated.kid, dropPrevious: req.dropPrevious, actor: caller.actor.userId, version: rotated.version });
      return create(pb.RotateSigningKeyResponseSchema, { kid: rotated.kid, verifyingKids: [...rotated.verifyingKids], version: await commit(rotated.version) });
    },
  };
  return refusingControlCharacters(pb.AuthService, handlers);
}
