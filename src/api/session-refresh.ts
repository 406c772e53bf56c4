/**
 * Presenting a refresh token: one rule for AuthService.Refresh and the browser's refresh cookie
 * (POST /oauth2/refresh), so that rotation, reuse detection and every revocation (logout, a
 * disabled user, a removed link or provider) hold alike for both, and so does the limit on made-up
 * tokens (token-lookups.ts): only a rotation gives its attempt back.
 */
import type { UserRecord } from "../core/model.js";
import type { Engine } from "../engine/engine.js";
import type { Logger } from "../observability/logger.js";
import { type Store, StoreError } from "../store/store.js";
import type * as pb from "../../gen/verdict/v1/auth_pb.js";
import { REFRESH_TOKEN, type SessionTokens, hashRefreshToken } from "./session-tokens.js";
import type { TokenLookups } from "./token-lookups.js";

/** What presenting a refresh token gave. */
export type RefreshResult =
  /** The token was used up; `tokens` holds the session's next pair. */
  | { readonly kind: "rotated"; readonly user: UserRecord; readonly tokens: pb.TokenPair }
  /** Malformed, unknown or expired, its session revoked or expired, or its user gone or disabled. */
  | { readonly kind: "invalid" }
  /** Presented before: its session is now revoked (the whole family, on every replica). */
  | { readonly kind: "reused"; readonly sessionId: string }
  /** Not looked up: the client address is past its budget of failed lookups. */
  | { readonly kind: "limited"; readonly retryAfterMs: number };

/** What createSessionRefresh needs. */
export interface SessionRefreshOptions {
  readonly store: Store;
  readonly engine: Engine;
  readonly sessions: SessionTokens;
  /** The store lookups of presented secrets, under each client address's budget of failures. */
  readonly lookups: TokenLookups;
  readonly logger: Logger;
  readonly now?: () => number;
}

/**
 * Presents `refreshToken` from `address` (the client address's bucket): rotates it in one
 * transaction and commits the change before answering (a reuse's revocation too), unless the
 * address is past its budget of failures. `via` names the caller in the audit line of a reuse.
 * Store failures throw.
 */
export type RefreshSession = (refreshToken: string, via: "api" | "cookie", address: string) => Promise<RefreshResult>;

/** Creates the refresh rule. */
export function createSessionRefresh(options: SessionRefreshOptions): RefreshSession {
  const { store, engine, sessions, lookups } = options;
  const now = options.now ?? Date.now;
  const audit = options.logger.child({ component: "audit" });
  const invalid: RefreshResult = { kind: "invalid" };

  async function present(refreshToken: string, via: "api" | "cookie"): Promise<RefreshResult> {
    const nowMs = now();
    const next = sessions.mintRefreshToken(nowMs);
    let outcome;
    try {
      outcome = await store.refreshSession(hashRefreshToken(refreshToken), next.record, nowMs, { userId: "system" });
    } catch (error) {
      if (error instanceof StoreError && error.code === "not_found") return invalid;
      throw error;
    }
    const { session } = outcome.value;
    await engine.commit(outcome.version);
    if (outcome.value.kind === "reused") {
      audit.warn("refresh token reused: session revoked", { session: session.id, user: session.userId, via, version: outcome.version });
      return { kind: "reused", sessionId: session.id };
    }
    const user = engine.current.getUser(session.userId);
    if (!user || user.disabled) return invalid;
    return { kind: "rotated", user, tokens: sessions.pair(user, session, next.token, BigInt(outcome.version), nowMs) };
  }

  return async (refreshToken, via, address) => {
    if (!REFRESH_TOKEN.test(refreshToken)) return invalid;
    const looked = await lookups("refresh", address, async () => {
      const result = await present(refreshToken, via);
      return { good: result.kind === "rotated", value: result };
    });
    return looked.limited ? { kind: "limited", retryAfterMs: looked.retryAfterMs } : looked.value;
  };
}
