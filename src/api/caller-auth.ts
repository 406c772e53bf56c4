/**
 * Authentication and authorization of callers of the admin and auth RPCs: HTTP Basic (username and
 * password, verified with argon2id), or a credential (API key or access token) resolved by the
 * engine; then a permission check in a tenant, or in every tenant for global objects.
 */
import { ALL_TENANTS } from "../core/model.js";
import { MAX_NAME_LENGTH } from "../core/names.js";
import type { Decision } from "../core/decision.js";
import type { Engine, Resolved } from "../engine/engine.js";
import type { Actor } from "../store/store.js";
import { ApiError } from "./errors.js";
import { type PasswordCheck, tooManyFailures } from "./password-check.js";
import { presentedCredential } from "./presented-credential.js";
import type { CallContext } from "./rpc.js";
import { controlCharacterProblem } from "./text-fields.js";

/**
 * What a caller's credential is limited to. A credential it creates (an API key, a rotated secret,
 * a password) must stay within these limits: a credential never mints one wider than itself.
 */
export interface CredentialLimits {
  /** How the caller authenticated: its password (Basic), an API key, or a token. */
  readonly via: "password" | "api_key" | "token";
  /** The one tenant the credential is valid in; "" when it is not limited to one. */
  readonly tenant: string;
  /** Patterns an API key is narrowed to; empty when the credential carries its owner's permissions. */
  readonly permissions: readonly string[];
  /** When the credential stops working (ms since the epoch); 0 for never. A token's exp. */
  readonly expiresAtMs: number;
  /** The Verdict session of one of Verdict's access tokens; "" otherwise. */
  readonly sessionId: string;
}

/** An authenticated caller. */
export interface Caller {
  readonly actor: Actor;
  readonly userId: string;
  readonly limits: CredentialLimits;
}

const PASSWORD_LIMITS: CredentialLimits = Object.freeze({ via: "password", tenant: "", permissions: [], expiresAtMs: 0, sessionId: "" });

/** Authenticates and authorizes callers. */
export interface CallerAuth {
  /** Who is calling; throws unauthenticated (or unavailable before the policy is loaded). */
  authenticate(ctx: CallContext): Promise<Authenticated>;
  /** Authenticates the caller and checks `action` in `tenant` (ALL_TENANTS: in every tenant). */
  authorize(ctx: CallContext, action: string, tenant: string): Promise<Caller>;
  /**
   * Checks `action` in `tenant` for a caller already authenticated (no second password check). A
   * tenant that does not exist is NOT_FOUND to a caller allowed `action` in every tenant, and
   * PERMISSION_DENIED to any other, as a tenant where it holds nothing is.
   */
  authorizeAuthenticated(authenticated: Authenticated, action: string, tenant: string): Caller;
  /** Whether a caller already authenticated is allowed `action` in `tenant`; throws nothing. */
  allows(authenticated: Authenticated, action: string, tenant: string): boolean;
}

/** The result of authenticate(). */
export interface Authenticated {
  readonly caller: Caller;
  readonly resolved: Resolved;
}

/** Creates the caller authentication shared by the admin and auth services. */
export function createCallerAuth(options: { readonly engine: Engine; readonly passwordCheck: PasswordCheck }): CallerAuth {
  const { engine, passwordCheck } = options;

  async function basicAuth(ctx: CallContext, header: string): Promise<Resolved> {
    const decoded = Buffer.from(header.replace(/^Basic\s+/i, ""), "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    const username = colon < 0 ? decoded : decoded.slice(0, colon);
    const password = colon < 0 ? "" : decoded.slice(colon + 1);
    const problem = controlCharacterProblem("the Basic username", username) ?? controlCharacterProblem("the Basic password", password);
    if (problem) throw new ApiError("invalid_argument", problem);
    if (username.length > MAX_NAME_LENGTH) throw new ApiError("unauthenticated", "invalid username or password");
    const result = await passwordCheck(ctx, username, password);
    if (result.kind === "limited") throw tooManyFailures(result.retryAfterMs);
    if (result.kind === "wrong") throw new ApiError("unauthenticated", "invalid username or password");
    return { kind: "user", userId: result.user.id };
  }

  const requireLoaded = () => {
    if (!engine.ready) throw new ApiError("unavailable", "the policy is not loaded yet; try again shortly");
  };

  async function authenticate(ctx: CallContext): Promise<Authenticated> {
    const authorization = ctx.header("authorization");
    if (authorization !== undefined && /^Basic\s/i.test(authorization)) {
      requireLoaded();
      const resolved = await basicAuth(ctx, authorization);
      const userId = resolved.kind === "user" ? resolved.userId : "";
      return { caller: { actor: { userId }, userId, limits: PASSWORD_LIMITS }, resolved };
    }
    const credential = presentedCredential(ctx);
    if (credential === "") {
      throw new ApiError(
        "unauthenticated",
        "this call needs a credential: send 'authorization: Bearer <API key or token>', 'x-api-key: <API key>' or 'authorization: Basic <username:password>'",
      );
    }
    requireLoaded();
    const resolved = await engine.resolve(credential);
    if (resolved.kind === "denied") throw new ApiError("unauthenticated", `credential rejected: ${resolved.decision.reason}: ${resolved.decision.message}`);
    // A revoked or expired key, or a disabled user's credential, proves nothing, even to calls that need no permission.
    const rejected = engine.credentialRejection(resolved);
    if (rejected) throw new ApiError("unauthenticated", `credential rejected: ${rejected.reason}: ${rejected.message}`);
    if (resolved.kind === "key") {
      const { key } = resolved;
      const limits: CredentialLimits = { via: "api_key", tenant: key.tenant, permissions: key.permissions, expiresAtMs: key.expiresAtMs, sessionId: "" };
      return { caller: { actor: { userId: key.ownerUserId, keyId: key.id }, userId: key.ownerUserId, limits }, resolved };
    }
    const { userId } = resolved;
    const limits: CredentialLimits = { via: "token", tenant: resolved.tenant ?? "", permissions: [], expiresAtMs: resolved.expiresAtMs ?? 0, sessionId: resolved.sessionId ?? "" };
    return { caller: { actor: { userId }, userId, limits }, resolved };
  }

  function refuse(d: Decision, action: string, tenant: string): never {
    if (d.reason === "REVOKED" || d.reason === "EXPIRED" || d.reason === "DISABLED" || d.reason === "UNKNOWN_CREDENTIAL") {
      throw new ApiError("unauthenticated", `credential rejected: ${d.reason}: ${d.message}`);
    }
    const where = tenant === ALL_TENANTS ? "in every tenant" : `in tenant ${tenant}`;
    throw new ApiError("permission_denied", `${action} ${where} is not allowed for this caller (${d.reason})`);
  }

  function authorizeAuthenticated({ caller, resolved }: Authenticated, action: string, tenant: string): Caller {
    const d = engine.decideResolved(resolved, action, tenant);
    if (d.allowed) return caller;
    if (d.reason === "UNKNOWN_TENANT") {
      // Whether a tenant exists (or is disabled) is told only to a caller allowed the action in
      // every tenant; any other is refused as in a tenant where it holds nothing.
      const everywhere = engine.decideResolved(resolved, action, ALL_TENANTS);
      if (!everywhere.allowed) refuse(everywhere, action, tenant);
      if (!engine.current.getTenant(tenant)) throw new ApiError("not_found", `tenant ${tenant} not found`);
    }
    refuse(d, action, tenant);
  }

  return {
    authenticate,
    authorize: async (ctx, action, tenant) => authorizeAuthenticated(await authenticate(ctx), action, tenant),
    authorizeAuthenticated,
    allows: ({ resolved }, action, tenant) => engine.decideResolved(resolved, action, tenant).allowed,
  };
}
