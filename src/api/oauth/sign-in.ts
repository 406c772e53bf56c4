/**
 * From an external identity to a Verdict session: the user linked to (provider, subject), or the
 * signed-in user who asked to link it, or (when the operator allows it for the provider) the user
 * whose username is the verified email, or a user provisioned as configured; then a session in the
 * same family as Login's (Refresh, Logout, reuse detection and revocation on every replica apply).
 */
import { createHash, randomUUID } from "node:crypto";
import type { OAuthProviderSettings } from "../../config/config.js";
import type { UserRecord } from "../../core/model.js";
import { isUsableExternalId } from "../../core/names.js";
import type { Engine } from "../../engine/engine.js";
import type { Logger } from "../../observability/logger.js";
import type { LinkedIdentityRecord } from "../../store/identity-store.js";
import { type SessionRecord, type Store, StoreError } from "../../store/store.js";
import type * as pb from "../../../gen/verdict/v1/auth_pb.js";
import type { SessionTokens } from "../session-tokens.js";
import { type ExternalIdentity, SignInError } from "./providers.js";

/** A session opened by a sign-in. */
export interface SignedIn {
  readonly user: UserRecord;
  readonly tokens: pb.TokenPair;
  /** True when this sign-in created the user. */
  readonly created: boolean;
  /** True when this sign-in linked the identity to the user. */
  readonly linked: boolean;
}

/** What createSignIn needs. */
export interface SignInOptions {
  readonly store: Store;
  readonly engine: Engine;
  readonly sessions: SessionTokens;
  readonly logger: Logger;
  readonly now?: () => number;
}

/** Opens sessions for external identities. */
export interface SignIn {
  /**
   * Signs `identity` in through `provider`; `linkUserId` (non-empty) links the identity to that
   * signed-in user first. Throws SignInError when no account may be used.
   */
  signIn(provider: OAuthProviderSettings, identity: ExternalIdentity, linkUserId: string): Promise<SignedIn>;
  /**
   * Revokes the sessions opened through providers not in `providerIds` (removed from the
   * configuration); returns the versions committed (none when there was nothing to revoke).
   */
  retireRemovedProviders(providerIds: readonly string[]): Promise<number[]>;
}

interface Plan {
  readonly user: UserRecord;
  readonly link?: LinkedIdentityRecord;
  readonly newUser?: { readonly user: UserRecord; readonly bindings: { tenant: string; userId: string; role: string }[] };
}

/** Creates the sign-in logic. */
export function createSignIn(options: SignInOptions): SignIn {
  const { store, engine, sessions } = options;
  const now = options.now ?? Date.now;
  const audit = options.logger.child({ component: "audit" });

  async function userById(id: string): Promise<UserRecord | undefined> {
    // From the store, not the cache: a user disabled a moment ago on another replica cannot sign in.
    return store.getUser(id);
  }

  function newLink(provider: OAuthProviderSettings, identity: ExternalIdentity, userId: string): LinkedIdentityRecord {
    return { provider: provider.id, subject: identity.subject, userId, email: identity.email, createdAtMs: now() };
  }

  async function plan(provider: OAuthProviderSettings, identity: ExternalIdentity, linkUserId: string): Promise<Plan> {
    const existing = await store.identities.getLinkedIdentity(provider.id, identity.subject);
    if (linkUserId !== "") {
      if (existing && existing.userId !== linkUserId) {
        throw new SignInError("identity_linked_elsewhere", `this ${provider.id} identity is already linked to another user`, 409);
      }
      const user = await userById(linkUserId);
      if (!user) throw new SignInError("user_unknown", "the signed-in user no longer exists", 403);
      return { user, link: existing ? undefined : newLink(provider, identity, user.id) };
    }
    if (existing) {
      const user = await userById(existing.userId);
      if (!user) throw new SignInError("user_unknown", "the linked user no longer exists", 403);
      return { user };
    }
    if (provider.linkVerifiedEmail && identity.emailVerified) {
      const user = (await store.getUserByUsername(identity.email)) ?? (await store.getUserByUsername(identity.email.toLowerCase()));
      if (user) return { user, link: newLink(provider, identity, user.id) };
    }
    const provision = provider.provision;
    if (!provision) {
      throw new SignInError("not_linked", `no Verdict user is linked to this ${provider.id} identity: sign in another way and link it, or ask an administrator`, 403);
    }
    if (provision.emailDomains.length > 0) {
      const domain = identity.email.slice(identity.email.lastIndexOf("@") + 1).toLowerCase();
      if (!identity.emailVerified || !provision.emailDomains.includes(domain)) {
        throw new SignInError("email_domain_not_allowed", "accounts are created only for verified emails in the allowed domains", 403);
      }
    }
    const user: UserRecord = {
      id: randomUUID(),
      username: `${provider.id}-${createHash("sha256").update(`${provider.id}\u0000${identity.subject}`).digest("hex").slice(0, 24)}`,
      disabled: false,
      root: false,
      createdAtMs: now(),
      externalIssuer: "",
      externalSubject: "",
    };
    return { user, link: newLink(provider, identity, user.id), newUser: { user, bindings: [{ tenant: provision.tenant, userId: user.id, role: provision.role }] } };
  }

  async function open(provider: OAuthProviderSettings, identity: ExternalIdentity, p: Plan): Promise<SignedIn> {
    if (p.user.disabled) throw new SignInError("user_disabled", "this user is disabled", 403);
    const nowMs = now();
    const refresh = sessions.mintRefreshToken(nowMs);
    const session: SessionRecord = {
      id: randomUUID(),
      userId: p.user.id,
      tenant: "",
      createdAtMs: nowMs,
      expiresAtMs: refresh.record.expiresAtMs,
      revokedAtMs: 0,
      revokeReason: "",
    };
    const { version } = await store.identities.openIdentitySession(
      { session, refresh: refresh.record, provider: provider.id, subject: identity.subject, link: p.link, newUser: p.newUser },
      { userId: p.user.id },
    );
    await engine.commit(version);
    audit.info("sign-in", { provider: provider.id, user: p.user.id, session: session.id, created: p.newUser !== undefined, linked: p.link !== undefined, version });
    return { user: p.user, tokens: sessions.pair(p.user, session, refresh.token, BigInt(version), nowMs), created: p.newUser !== undefined, linked: p.link !== undefined };
  }

  return {
    async retireRemovedProviders(providerIds) {
      const done = await store.identities.revokeSessionsOfRemovedProviders(providerIds, now(), { userId: "system" });
      if (!done) return [];
      audit.info("sessions of removed identity providers revoked", { sessions: done.value, version: done.version });
      return [done.version];
    },
    async signIn(provider, identity, linkUserId) {
      // The provider's identifiers name a user: " " or "alice\u0000" must never stand for someone.
      if (!isUsableExternalId(identity.subject)) {
        throw new SignInError("identity_invalid", "the provider's subject is blank, padded with whitespace, longer than 255 characters or holds control or invisible characters");
      }
      if (identity.email !== "" && !isUsableExternalId(identity.email)) {
        throw new SignInError("identity_invalid", "the provider's email is padded with whitespace, longer than 255 characters or holds control or invisible characters");
      }
      try {
        return await open(provider, identity, await plan(provider, identity, linkUserId));
      } catch (error) {
        // A concurrent first sign-in of the same identity linked it first: use that link.
        if (!(error instanceof StoreError && error.code === "already_exists")) throw error;
        return open(provider, identity, await plan(provider, identity, linkUserId));
      }
    },
  };
}
