/**
 * The live token state of one replica: Verdict's signing keys (loaded from the store, rebuilt on a
 * "signing_key" change), the verifier with its claims cache, the sessions revoked recently (from
 * "session" changes), and the mapping of external subjects to users. Plugged into the engine as
 * its TokenAuthenticator, so Check accepts JWTs; everything a Check needs is in memory.
 */
import { hash, randomUUID } from "node:crypto";
import type { OidcIssuerSettings, TokenSettings } from "../config/config.js";
import { parseJwtSecret, parseKeyEncryptionKey } from "../config/secrets.js";
import type { UserRecord } from "../core/model.js";
import type { SigningKeyRecord } from "../core/signing-key-record.js";
import { type AccessTokenInput, type OwnIssuerConfig, type SignedAccessToken, type TokenResult, type TokenVerifier, type TokenVerifierStats, createTokenVerifier, signAccessToken } from "../authn/tokens/jwt.js";
import {
  type KeyRing,
  type PublicJwks,
  createHmacKeyRing,
  createSigningKeyRing,
} from "../authn/tokens/signing-keys.js";
import type { Logger } from "../observability/logger.js";
import { type Actor, type Store, StoreError } from "../store/store.js";
import type { Engine, TokenAuth, TokenAuthenticator } from "./engine.js";

/** What createTokenAuthority needs. */
export interface TokenAuthorityOptions {
  readonly store: Store;
  readonly engine: Engine;
  readonly settings: TokenSettings;
  readonly logger: Logger;
  readonly now?: () => number;
  /** Injected fetch for external key sets (tests); default globalThis.fetch. */
  readonly fetch?: typeof globalThis.fetch;
}

/** The result of a key rotation. */
export interface RotationResult {
  readonly kid: string;
  /** Kids still verifying tokens after the rotation, the new one included. */
  readonly verifyingKids: readonly string[];
  readonly version: number;
}

/** Counters for metrics. */
export interface TokenAuthorityStats extends TokenVerifierStats {
  readonly revokedSessions: number;
}

/** Verdict's token state on one replica. */
export interface TokenAuthority extends TokenAuthenticator {
  /** True when tokens are HS256 with VERDICT_JWT_SECRET (no stored keys, no JWKS, no rotation). */
  readonly hs256: boolean;
  /**
   * Creates the signing keys at first start (one replica wins, the others load its keys) and
   * seals plain stored keys once a key-encryption key is configured. Returns the versions it
   * committed. Call after migrations, before the engine loads.
   */
  ensureKeys(): Promise<number[]>;
  /** Signs an access token for a session; throws before the keys are loaded (a bug). */
  issue(user: UserRecord, sessionId: string, tenant: string, nowMs: number): SignedAccessToken;
  /** The public keys that verify Verdict's tokens now. */
  jwks(nowMs: number): PublicJwks;
  /** Makes a new key active; with dropPrevious, retired keys stop verifying at once. */
  rotate(dropPrevious: boolean, actor: Actor): Promise<RotationResult>;
  /** Verifies a token without mapping it to a user (Logout by access token). */
  verify(token: string, nowMs: number): TokenResult | Promise<TokenResult>;
  /** Fetches the external issuers' key sets (start-up); never rejects. */
  warm(): Promise<void>;
  stats(): TokenAuthorityStats;
}

const SYSTEM: Actor = { userId: "system" };

/** Creates the token state and registers its reloaders and listeners with the engine. */
export function createTokenAuthority(options: TokenAuthorityOptions): TokenAuthority {
  const { store, engine, settings } = options;
  const now = options.now ?? Date.now;
  const log = options.logger.child({ component: "tokens" });
  const hs256 = settings.jwtSecret !== "";
  const kek = settings.keyEncryptionKey === "" ? undefined : parseKeyEncryptionKey(settings.keyEncryptionKey);
  // A retired key verifies for as long as the longest token it may have signed can live.
  const retireAfterMs = settings.accessTtlMs + settings.leewayMs;
  const external = new Map<string, OidcIssuerSettings>(settings.oidcIssuers.map((i) => [i.issuer, i]));

  let ring: KeyRing | undefined = hs256
    ? createHmacKeyRing({ secret: parseJwtSecret(settings.jwtSecret), retireAfterMs, nowMs: now() })
    : undefined;
  // The verifier holds the ring through this view, so swapping the ring keeps the external key sets.
  const liveRing: OwnIssuerConfig["ring"] = {
    get alg() {
      return requireRing().alg;
    },
    verificationKey: (kid, nowMs) => requireRing().verificationKey(kid, nowMs),
  };
  let verifier: TokenVerifier | undefined;
  const revoked = new Map<string, number>();
  const creating = new Map<string, Promise<TokenAuth>>();

  function requireRing(): KeyRing {
    if (!ring) throw new Error("signing keys are not loaded yet");
    return ring;
  }

  function buildVerifier(): TokenVerifier {
    return createTokenVerifier({
      own: { issuer: settings.issuer, audience: settings.audience, ring: liveRing, tenantClaim: settings.tenantClaim },
      external: settings.oidcIssuers,
      leewayMs: settings.leewayMs,
      cacheSize: settings.claimsCacheSize,
      fetch: options.fetch,
    });
  }

  function ringFromStore(records: readonly SigningKeyRecord[] | undefined): KeyRing {
    return createSigningKeyRing({ alg: settings.signingAlg, retireAfterMs, nowMs: now(), keyEncryptionKey: kek, records });
  }

  async function loadKeys(): Promise<void> {
    if (!hs256) {
      const records = await store.listSigningKeys();
      if (records.length === 0) throw new Error("no signing keys are stored yet (the first replica creates them at start)");
      ring = ringFromStore(records);
      log.info("signing keys loaded", { active: ring.active().kid, keys: records.length });
    }
    // Cached claims of tokens signed by a key that was dropped must not outlive it.
    if (verifier) verifier.clearCache();
    else verifier = buildVerifier();
  }

  async function applySessions(ids: readonly string[]): Promise<void> {
    const horizon = now() - retireAfterMs;
    if (ids.length === 0) {
      revoked.clear();
      for (const s of await store.listRevokedSessions(horizon)) revoked.set(s.id, s.revokedAtMs);
      return;
    }
    for (const s of await store.getSessions(ids)) {
      if (s.revokedAtMs === 0) continue;
      revoked.set(s.id, s.revokedAtMs);
      verifier?.invalidateSession(s.id);
    }
    // Every token of a session revoked before the horizon has expired: forget the session.
    for (const [id, at] of revoked) if (at < horizon) revoked.delete(id);
  }

  engine.onChanges("signing_key", () => loadKeys());
  engine.onChanges("session", applySessions);
  engine.onApplied((changes) => {
    if (changes === "reload" || !verifier) return;
    for (const c of changes) if (c.kind === "user") verifier.invalidateSubject(c.id);
  });

  function externalUsername(issuer: string, subject: string): string {
    return `ext-${hash("sha256", `${issuer}\u0000${subject}`, "hex").slice(0, 24)}`;
  }

  /** Provisions the user of an external subject; the answer carries no claims of any one token. */
  async function createExternalUser(config: OidcIssuerSettings, subject: string): Promise<TokenAuth> {
    const user: UserRecord = {
      id: randomUUID(),
      username: externalUsername(config.issuer, subject),
      disabled: false,
      root: false,
      createdAtMs: now(),
      externalIssuer: config.issuer,
      externalSubject: subject,
    };
    try {
      const { version } = await store.createExternalUser(user, [{ tenant: config.defaultTenant, userId: user.id, role: config.defaultRole }], SYSTEM);
      await engine.commit(version);
      log.info("user created for an external identity", { user: user.id, issuer: config.issuer, version });
    } catch (error) {
      if (!(error instanceof StoreError && error.code === "already_exists")) {
        log.error("cannot create a user for an external identity", { issuer: config.issuer, error });
        return { ok: false, reason: "INTERNAL_ERROR", message: "cannot create a user for this external identity" };
      }
      await engine.catchUp("external_user");
    }
    const mapped = engine.current.getUserByExternalIdentity(config.issuer, subject);
    if (!mapped) return { ok: false, reason: "UNKNOWN_CREDENTIAL", message: "no Verdict user is mapped to this external subject" };
    return { ok: true, userId: mapped.id };
  }

  function fromResult(result: TokenResult): TokenAuth | Promise<TokenAuth> {
    if (!result.ok) return result;
    const { claims } = result;
    if (claims.own) {
      if (claims.sessionId === "") return { ok: false, reason: "MALFORMED_CREDENTIAL", message: "token has no session id" };
      if (revoked.has(claims.sessionId)) return { ok: false, reason: "REVOKED", message: "the token's session was revoked" };
      return { ok: true, userId: claims.subject, tenant: claims.tenant, sessionId: claims.sessionId, expiresAtMs: claims.expiresAtMs };
    }
    const user = engine.current.getUserByExternalIdentity(claims.issuer, claims.subject);
    if (user) return { ok: true, userId: user.id, tenant: claims.tenant, expiresAtMs: claims.expiresAtMs };
    const config = external.get(claims.issuer);
    if (!config?.createUsers) return { ok: false, reason: "UNKNOWN_CREDENTIAL", message: "no Verdict user is mapped to this external subject" };
    const key = `${claims.issuer}\u0000${claims.subject}`;
    let pending = creating.get(key);
    if (!pending) {
      pending = createExternalUser(config, claims.subject).finally(() => creating.delete(key));
      creating.set(key, pending);
    }
    // Tokens of one subject arriving together share the provisioning, never each other's scope.
    return pending.then((auth) => (auth.ok ? { ...auth, tenant: claims.tenant, expiresAtMs: claims.expiresAtMs } : auth));
  }

  const notReady = (): TokenResult => ({ ok: false, reason: "MALFORMED_CREDENTIAL", message: "token verification is not ready" });

  return {
    hs256,
    authenticate(token, nowMs) {
      if (!verifier) return { ok: false, reason: "INTERNAL_ERROR", message: "token verification is not ready" };
      const result = verifier.verify(token, nowMs);
      return result instanceof Promise ? result.then(fromResult) : fromResult(result);
    },
    verify(token, nowMs) {
      return verifier ? verifier.verify(token, nowMs) : notReady();
    },
    async ensureKeys() {
      if (hs256) return [];
      const records = await store.listSigningKeys();
      // Warned at every start with plain keys, the first (which creates them) included.
      if (!kek && (records.length === 0 || records.some((r) => !r.encrypted))) {
        log.warn("signing keys are stored unencrypted: set VERDICT_KEY_ENCRYPTION_KEY to seal them at rest");
      }
      try {
        if (records.length === 0) {
          const created = ringFromStore(undefined);
          const { version } = await store.replaceSigningKeys(created.exportRecords(), null, SYSTEM);
          log.info("signing key created", { kid: created.active().kid, alg: created.alg, encrypted: kek !== undefined, version });
          return [version];
        }
        if (kek && records.some((r) => !r.encrypted)) {
          const loaded = ringFromStore(records);
          const { version } = await store.replaceSigningKeys(loaded.exportRecords(), loaded.active().kid, SYSTEM);
          log.info("stored signing keys sealed with the key-encryption key", { version });
          return [version];
        }
      } catch (error) {
        // Another replica created or sealed the keys first; the engine loads theirs.
        if (!(error instanceof StoreError && error.code === "conflict")) throw error;
      }
      return [];
    },
    issue(user, sessionId, tenant, nowMs) {
      const input: AccessTokenInput = {
        issuer: settings.issuer,
        audience: settings.audience,
        subject: user.id,
        tenant,
        sessionId,
        ttlMs: settings.accessTtlMs,
        tenantClaim: settings.tenantClaim,
      };
      return signAccessToken(requireRing(), input, nowMs);
    },
    jwks(nowMs) {
      return ring ? ring.publicJwks(nowMs) : { keys: [] };
    },
    async rotate(dropPrevious, actor) {
      if (hs256) throw new Error("an HS256 deployment has no signing keys to rotate");
      const nowMs = now();
      const current = ringFromStore(await store.listSigningKeys());
      const previous = current.active().kid;
      const next = current.rotate(nowMs);
      const records = current.exportRecords().filter((r) => !dropPrevious || r.retiredAtMs === null);
      const { version } = await store.replaceSigningKeys(records, previous, actor);
      const kept = new Set(records.map((r) => r.kid));
      const verifyingKids = current.publicJwks(nowMs).keys.map((k) => k.kid).filter((kid) => kept.has(kid));
      log.info("signing key rotated", { kid: next.kid, previous, dropPrevious, version });
      return { kid: next.kid, verifyingKids, version };
    },
    async warm() {
      await verifier?.warm(now());
    },
    stats() {
      const base = verifier?.stats() ?? { signatureChecks: 0, cacheHits: 0, cacheEntries: 0, keySets: {} };
      return { ...base, revokedSessions: revoked.size };
    },
  };
}
