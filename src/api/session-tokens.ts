/**
 * The tokens of a session, shared by Login and sign-in through identity providers: refresh tokens
 * (prefixed, random, stored only as a hash) and the token pair handed to the client.
 */
import { create } from "@bufbuild/protobuf";
import { randomBytes } from "node:crypto";
import { hashApiKey } from "../authn/api-key.js";
import type { UserRecord } from "../core/model.js";
import type { TokenAuthority } from "../engine/token-authority.js";
import type { RefreshTokenRecord, SessionRecord } from "../store/store.js";
import * as pb from "../../gen/verdict/v1/auth_pb.js";

/** Prefix of refresh tokens, so that a leaked one is recognisable (secret scanners, logs). */
const REFRESH_TOKEN_PREFIX = "vrt_";

/** The shape of a refresh token. */
export const REFRESH_TOKEN = /^vrt_[A-Za-z0-9_-]{43}$/;

/** Refresh tokens are stored as the same hex SHA-256 as API keys (256 random bits need no slow hash). */
export const hashRefreshToken = hashApiKey;

/** Mints refresh tokens and token pairs for sessions. */
export interface SessionTokens {
  /** A new refresh token and the record stored for it (its hash and lifetime). */
  mintRefreshToken(nowMs: number): { readonly token: string; readonly record: RefreshTokenRecord };
  /** Signs an access token for the session and returns it with the refresh token. */
  pair(user: UserRecord, session: SessionRecord, refreshToken: string, version: bigint, nowMs: number): pb.TokenPair;
}

/** Creates the session token helpers over the token authority. */
export function createSessionTokens(tokens: TokenAuthority, refreshTtlMs: number): SessionTokens {
  return {
    mintRefreshToken(nowMs) {
      const token = REFRESH_TOKEN_PREFIX + randomBytes(32).toString("base64url");
      return { token, record: { hash: hashRefreshToken(token), issuedAtMs: nowMs, expiresAtMs: nowMs + refreshTtlMs } };
    },
    pair(user, session, refreshToken, version, nowMs) {
      const access = tokens.issue(user, session.id, session.tenant, nowMs);
      return create(pb.TokenPairSchema, {
        accessToken: access.token,
        refreshToken,
        tokenType: "Bearer",
        expiresIn: BigInt(Math.max(0, Math.floor((access.expiresAtMs - nowMs) / 1000))),
        refreshExpiresIn: BigInt(Math.floor(refreshTtlMs / 1000)),
        sessionId: session.id,
        tenant: session.tenant,
        version,
      });
    },
  };
}
