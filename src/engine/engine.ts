/**
 * The live cache: holds the current policy in memory, answers Check from it without I/O, and
 * follows the store's change log by version (after local commits, on bus messages, and by polling).
 */
import { type Decision, deny } from "../core/decision.js";
import type { ApiKeyGrant } from "../core/model.js";
import { Policy, type PolicyOptions } from "../core/policy.js";
import { apiKeyProblem, hashApiKey, looksLikeApiKey } from "../authn/api-key.js";
import { isCompactJws } from "../authn/tokens/compact-jws.js";
import type { Bus } from "../bus/bus.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { ChangeEntry, EntityKind } from "../core/change-log.js";
import { type Store, StoreError } from "../store/store.js";

/** Resolves at the next turn of the event loop, after the I/O that is waiting. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
import { createKeyUseRecorder, type KeyUseRecorder } from "./key-use.js";
import type { RateLimiter, RouteLimit } from "./rate-limiter.js";
import { NO_LIMIT, type RateAnswer } from "../core/rate-limit.js";

/** The result of verifying a token credential. */
export type TokenAuth =
  /**
   * `tenant`: the token is scoped to that tenant only (a Check elsewhere is WRONG_TENANT); absent or
   * "": unscoped. `sessionId`: the Verdict session of one of Verdict's own tokens. `expiresAtMs`:
   * the token's exp.
   */
  | { readonly ok: true; readonly userId: string; readonly tenant?: string; readonly sessionId?: string; readonly expiresAtMs?: number }
  | { readonly ok: false; readonly reason: Exclude<Decision["reason"], "ALLOWED">; readonly message: string };

/** Verifies JWT credentials (plugged in by the token layer). */
export interface TokenAuthenticator {
  authenticate(token: string, nowMs: number): TokenAuth | Promise<TokenAuth>;
}

/** Who a credential identifies, or why it identifies nobody. */
export type Resolved =
  | { readonly kind: "key"; readonly key: ApiKeyGrant }
  | { readonly kind: "user"; readonly userId: string; readonly tenant?: string; readonly sessionId?: string; readonly expiresAtMs?: number }
  | { readonly kind: "denied"; readonly decision: Decision };

/** Reloads entities of a kind the core does not hold (sessions, signing keys). */
export type ExtraApplier = (ids: readonly string[]) => Promise<void>;

/** Engine settings. */
export interface EngineOptions {
  readonly store: Store;
  readonly bus: Bus;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly policy: PolicyOptions;
  readonly failOpen: boolean;
  readonly pollIntervalMs: number;
  readonly keyUse: { readonly flushIntervalMs: number; readonly maxPending: number };
  /** Counts Checks per credential; without it nothing is rate limited. */
  readonly rateLimiter?: RateLimiter;
  readonly now?: () => number;
}

const CHANGE_BATCH = 1000;
/**
 * Catch-ups asked for by a min_version start at most this often: any caller may name any version
 * (no credential needed), and each one would otherwise read the change log.
 */
const MIN_VERSION_CATCH_UP_MS = 20;

/** The in-memory decision engine of one replica. */
export class Engine {
  private policy: Policy;
  private loaded = false;
  private committed = 0;
  private running: Promise<void> | undefined;
  private again = false;
  private waiters: Array<{ version: number; resolve: () => void }> = [];
  private pollTimer: NodeJS.Timeout | undefined;
  private minVersionCatchUpAt = -Infinity;
  private minVersionTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private pollFailing = false;
  private tokens: TokenAuthenticator | undefined;
  private readonly extraAppliers = new Map<EntityKind, ExtraApplier>();
  private readonly appliedListeners: Array<(changes: readonly ChangeEntry[] | "reload") => void> = [];
  private readonly keyUse: KeyUseRecorder;
  private readonly now: () => number;
  private readonly log: Logger;

  constructor(private readonly options: EngineOptions) {
    this.policy = new Policy(options.policy);
    this.now = options.now ?? Date.now;
    this.log = options.logger.child({ component: "engine" });
    this.keyUse = createKeyUseRecorder({
      ...options.keyUse,
      write: (uses) => options.store.recordKeyUse(uses),
      onDropped: () => options.metrics.keyUseDropped.inc(),
      onFlushFailed: (error) => {
        options.metrics.keyUseFlushFailures.inc();
        this.log.warn("recording API key use failed", { error });
      },
    });
    options.bus.subscribe((message) => {
      options.metrics.busMessages.inc();
      if (message.version > this.committed) this.committed = message.version;
      if (message.version > this.policy.version) void this.catchUp("bus");
    });
    options.bus.onReconnect(() => {
      options.metrics.busResubscriptions.inc();
      void this.catchUp("reconnect");
    });
  }

  /** True once the policy has been loaded; until then Check fails closed (or open if configured). */
  get ready(): boolean {
    return this.loaded;
  }

  /** The policy version answers are computed at. */
  get version(): number {
    return this.policy.version;
  }

  /** The newest committed version this replica has heard of. */
  get committedVersion(): number {
    return Math.max(this.committed, this.policy.version);
  }

  /** The current policy (read-only use: admin reads and lookups). */
  get current(): Policy {
    return this.policy;
  }

  /** Plugs in JWT verification. */
  setTokenAuthenticator(tokens: TokenAuthenticator): void {
    this.tokens = tokens;
  }

  /** Registers a reloader for entity kinds held outside the core policy. */
  onChanges(kind: EntityKind, apply: ExtraApplier): void {
    this.extraAppliers.set(kind, apply);
  }

  /**
   * Registers a listener called synchronously after each batch of changes is applied (with the
   * entries) or after a full reload (with "reload"): caches outside the policy drop what changed.
   */
  onApplied(listener: (changes: readonly ChangeEntry[] | "reload") => void): void {
    this.appliedListeners.push(listener);
  }

  /**
   * Loads the whole policy and starts polling; throws if the store cannot be read (the caller
   * retries). Until it succeeds, bus messages and min_version waits read nothing: a by-id change
   * applied to an empty policy, racing the snapshot, could leave an older row over a newer one.
   */
  async load(): Promise<void> {
    if (this.loaded) return;
    await this.fullReload();
    this.loaded = true;
    this.schedulePoll();
  }

  // ---- Check ----

  /** Resolves a credential to a principal, without I/O for API keys and cached tokens. */
  resolve(credential: string): Resolved | Promise<Resolved> {
    if (credential.length === 0) return { kind: "denied", decision: deny("UNAUTHENTICATED", "no credential", this.policy.version) };
    if (looksLikeApiKey(credential)) {
      const problem = apiKeyProblem(credential);
      if (problem) return { kind: "denied", decision: deny("MALFORMED_CREDENTIAL", problem, this.policy.version) };
      const key = this.policy.getApiKeyByHash(hashApiKey(credential));
      if (!key) return { kind: "denied", decision: deny("UNKNOWN_CREDENTIAL", "unknown API key", this.policy.version) };
      return { kind: "key", key };
    }
    if (credential.length > 8192) {
      return { kind: "denied", decision: deny("MALFORMED_CREDENTIAL", "credential longer than 8192 characters", this.policy.version) };
    }
    if (!isCompactJws(credential)) {
      return { kind: "denied", decision: deny("MALFORMED_CREDENTIAL", "credential is neither an API key nor a JWT", this.policy.version) };
    }
    if (!this.tokens) {
      return { kind: "denied", decision: deny("UNKNOWN_CREDENTIAL", "token credentials are not configured", this.policy.version) };
    }
    const auth = this.tokens.authenticate(credential, this.now());
    return auth instanceof Promise ? auth.then((a) => this.fromToken(a)) : this.fromToken(auth);
  }

  private fromToken(auth: TokenAuth): Resolved {
    if (!auth.ok) return { kind: "denied", decision: deny(auth.reason, auth.message, this.policy.version) };
    return { kind: "user", userId: auth.userId, tenant: auth.tenant, sessionId: auth.sessionId, expiresAtMs: auth.expiresAtMs };
  }

  /**
   * Decides one action and counts `cost` units (default 1; 0 only asks) against the credential's
   * rate limits, and its limits on `route` when given; synchronous unless a token needs a key set
   * fetched.
   */
  check(credential: string, action: string, tenant: string, cost = 1, route?: RouteLimit): Decision | Promise<Decision> {
    if (!this.loaded) return this.notReady();
    try {
      const resolved = this.resolve(credential);
      if (resolved instanceof Promise) return resolved.then((r) => this.limit(this.decideResolved(r, action, tenant), cost, route), (e) => this.failure(e));
      return this.limit(this.decideResolved(resolved, action, tenant), cost, route);
    } catch (error) {
      return this.failure(error);
    }
  }

  /**
   * Counts a decision's request against its principal's rate limits: a credential over a limit
   * is denied RATE_LIMITED (whatever the policy said, and nothing is consumed); otherwise the
   * decision comes back with the credential's standing. Decisions without a principal (the
   * credential was not accepted) are not counted.
   */
  limit(decision: Decision, cost: number, route?: RouteLimit): Decision {
    const limiter = this.options.rateLimiter;
    if (!limiter || !decision.principal) return decision;
    const rate = limiter.take(decision.principal, cost, this.now(), route);
    if (rate.bound === undefined && rate.shadow === undefined) return decision;
    if (rate.shadow && rate.allowed) this.options.metrics.countRateLimit("shadow", rate.shadow.scope, rate.shadow.window);
    if (!rate.allowed) this.options.metrics.countRateLimit("limited", rate.bound!.scope, rate.bound!.window);
    if (rate.allowed) return { ...decision, rate };
    const b = rate.bound!;
    if (rate.unavailable) {
      const message = "rate limits cannot be counted fleet-wide right now (Redis unreachable); failing closed";
      return { allowed: false, reason: "RATE_LIMITED", message, principal: decision.principal, version: decision.version, rate };
    }
    const per = b.window === "burst" ? `per ${limiter.windows.minute.slotMs / 1000} s (burst)` : `per ${b.window}`;
    const message = `rate limit exceeded: ${b.limit} ${per} (${b.scope} limit); retry in ${Math.ceil(rate.resetMs / 1000)} s`;
    return { allowed: false, reason: "RATE_LIMITED", message, principal: decision.principal, version: decision.version, rate };
  }

  /**
   * Counts a request of `cost` units on `route` for a subject that is no credential (ext_authz: the
   * client address of a request to an exempt path), against the route's limits only. Without a
   * limiter nothing is limited.
   */
  limitAnonymous(subject: string, route: RouteLimit, cost: number): RateAnswer {
    const limiter = this.options.rateLimiter;
    if (!limiter) return NO_LIMIT;
    const rate = limiter.takeAnonymous(subject, route, cost, this.now());
    if (rate.shadow && rate.allowed) this.options.metrics.countRateLimit("shadow", rate.shadow.scope, rate.shadow.window);
    if (!rate.allowed) this.options.metrics.countRateLimit("limited", rate.bound!.scope, rate.bound!.window);
    return rate;
  }

  /**
   * Why a resolved credential is no good for any action in any tenant (unknown, malformed, revoked,
   * expired, its user disabled or deleted); undefined when it is good.
   */
  credentialRejection(resolved: Resolved): Decision | undefined {
    switch (resolved.kind) {
      case "denied":
        return resolved.decision;
      case "key":
        return this.policy.credentialRejection(resolved.key.ownerUserId, resolved.key, this.now());
      case "user":
        return this.policy.credentialRejection(resolved.userId, undefined, this.now());
    }
  }

  /** Decides for an already resolved principal (CheckBatch and admin authorization use it). */
  decideResolved(resolved: Resolved, action: string, tenant: string): Decision {
    switch (resolved.kind) {
      case "denied":
        return resolved.decision;
      case "key": {
        const now = this.now();
        const decision = this.policy.decideForKey(resolved.key, action, tenant, now);
        if (decision.principal) this.keyUse.record(resolved.key.id, now);
        return decision;
      }
      case "user":
        if (resolved.tenant && resolved.tenant !== tenant) {
          return deny("WRONG_TENANT", `the token is scoped to tenant ${resolved.tenant}`, this.policy.version);
        }
        return this.policy.decideForUser(resolved.userId, action, tenant);
    }
  }

  private notReady(): Decision {
    if (this.options.failOpen) {
      return { allowed: true, reason: "INTERNAL_ERROR", message: "policy not loaded yet; failing open", principal: undefined, version: 0 };
    }
    return deny("INTERNAL_ERROR", "policy not loaded yet", 0);
  }

  private failure(error: unknown): Decision {
    this.log.error("check failed", { error });
    if (this.options.failOpen) {
      return { allowed: true, reason: "INTERNAL_ERROR", message: "internal error; failing open", principal: undefined, version: this.policy.version };
    }
    return deny("INTERNAL_ERROR", "internal error", this.policy.version);
  }

  // ---- following the change log ----

  /**
   * Follows a mutation the store just committed at `version`: applies it on this replica (reading
   * the change log as needed), then announces it to the others (after commit, never before).
   * Throws StoreError("unavailable") when the store cannot be read (the change stays committed:
   * this replica and the others pick it up by polling when the store returns).
   */
  async commit(version: number): Promise<void> {
    if (version > this.committed) this.committed = version;
    for (let attempt = 0; attempt < 2 && this.policy.version < version; attempt++) await this.catchUp("commit");
    if (this.policy.version < version) {
      throw new StoreError("unavailable", `committed at version ${version}, but this replica could not read the change log to apply it`);
    }
    await this.publish(version);
  }

  /** Announces a committed version to the other replicas (after commit, never before). */
  async publish(version: number): Promise<void> {
    await this.options.bus.publish({ version, changes: [] });
  }

  /**
   * Resolves true once `version` is applied, false after `timeoutMs`. The version comes from a
   * client, so it is not taken as committed (a made-up one must not inflate the lag metric).
   */
  waitForVersion(version: number, timeoutMs: number): Promise<boolean> {
    if (this.policy.version >= version) return Promise.resolve(true);
    if (!this.loaded || timeoutMs <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter = {
        version,
        resolve: () => {
          clearTimeout(timer);
          resolve(true);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(this.policy.version >= version);
      }, timeoutMs);
      this.waiters.push(waiter);
      this.catchUpForMinVersion();
    });
  }

  /** Starts a catch-up for waiting min_versions, or schedules one MIN_VERSION_CATCH_UP_MS after the last. */
  private catchUpForMinVersion(): void {
    if (this.minVersionTimer) return;
    const start = () => {
      this.minVersionCatchUpAt = performance.now();
      void this.catchUp("min_version");
    };
    const waitMs = this.minVersionCatchUpAt + MIN_VERSION_CATCH_UP_MS - performance.now();
    if (waitMs <= 0) return start();
    this.minVersionTimer = setTimeout(() => {
      this.minVersionTimer = undefined;
      if (this.waiters.length > 0) start();
    }, waitMs);
    this.minVersionTimer.unref();
  }

  /**
   * Reads and applies every change after the applied version; one run at a time (a call during a
   * run makes it go round once more). Does nothing before load(). Never rejects: a failure is
   * counted and logged, and the last good policy keeps serving.
   */
  catchUp(trigger: string): Promise<void> {
    if (!this.loaded || this.closed) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.options.metrics.catchUps.labels(trigger).inc();
    const timer = this.options.metrics.catchUpDuration.startTimer();
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.catchUpOnce();
        } while (this.again && !this.closed);
      } catch (error) {
        this.options.metrics.applyFailures.inc();
        this.log.warn("catching up with the change log failed; serving the last good policy", { error, version: this.policy.version });
      } finally {
        timer();
        this.running = undefined;
      }
    })();
    return this.running;
  }

  private async catchUpOnce(): Promise<void> {
    for (;;) {
      const changes = await this.options.store.changesSince(this.policy.version, CHANGE_BATCH);
      if (changes === undefined) {
        await this.fullReload();
        return;
      }
      if (changes.length === 0) return;
      await this.applyChanges(changes);
      if (changes.length < CHANGE_BATCH) return;
    }
  }

  private async applyChanges(changes: readonly ChangeEntry[]): Promise<void> {
    const store = this.options.store;
    const byKind = new Map<EntityKind, Set<string>>();
    for (const c of changes) {
      let ids = byKind.get(c.kind);
      if (!ids) byKind.set(c.kind, (ids = new Set()));
      ids.add(c.id);
    }
    const ids = (kind: EntityKind) => [...(byKind.get(kind) ?? [])];
    // Read every changed row first, then apply them all at once so no Check sees half a change.
    const [tenants, users, roles, bindings, keys] = await Promise.all([
      Promise.all(ids("tenant").map(async (id) => [id, await store.getTenant(id)] as const)),
      Promise.all(ids("user").map(async (id) => [id, await store.getUser(id)] as const)),
      Promise.all(ids("role").map(async (id) => [id, await store.getRole(id)] as const)),
      Promise.all(ids("binding").map(async (id) => [id, await store.getBindingsForUser(id)] as const)),
      Promise.all(ids("api_key").map(async (id) => [id, await store.getApiKey(id)] as const)),
    ]);
    for (const [kind, apply] of this.extraAppliers) {
      const changed = ids(kind);
      if (changed.length > 0) await apply(changed);
    }
    const p = this.policy;
    for (const [id, t] of tenants) if (t) p.putTenant(t); else p.removeTenant(id);
    for (const [id, u] of users) if (u) p.putUser(u); else p.removeUser(id);
    for (const [id, r] of roles) if (r) p.putRole(r); else p.removeRole(id);
    for (const [id, b] of bindings) p.setBindings(id, b);
    for (const [id, k] of keys) if (k) p.putApiKey(k); else p.removeApiKey(id);
    for (const [kind, set] of byKind) this.options.metrics.changesApplied.labels(kind).inc(set.size);
    for (const listener of this.appliedListeners) listener(changes);
    this.advanceTo(changes[changes.length - 1].version);
  }

  private async fullReload(): Promise<void> {
    const data = await this.options.store.loadSnapshot();
    for (const apply of this.extraAppliers.values()) await apply([]);
    // Built a slice at a time, a turn of the event loop apart: a million keys take over a second
    // to index, which in one piece would hold every Check; the current policy answers meanwhile.
    this.policy = await Policy.fromDataInSlices(data, this.options.policy, nextTurn);
    for (const listener of this.appliedListeners) listener("reload");
    this.options.metrics.fullReloads.inc();
    this.log.info("policy loaded", { version: data.version, ...this.policy.sizes() });
    this.advanceTo(data.version);
  }

  private advanceTo(version: number): void {
    if (version > this.policy.version) this.policy.version = version;
    if (version > this.committed) this.committed = version;
    if (this.waiters.length === 0) return;
    const still: typeof this.waiters = [];
    for (const w of this.waiters) if (w.version <= this.policy.version) w.resolve(); else still.push(w);
    this.waiters = still;
  }

  private schedulePoll(): void {
    if (this.closed) return;
    this.pollTimer = setTimeout(() => void this.poll(), this.options.pollIntervalMs);
    this.pollTimer.unref();
  }

  private async poll(): Promise<void> {
    try {
      const latest = await this.options.store.currentVersion();
      if (this.pollFailing) this.log.info("the policy store answers again", { version: latest });
      this.pollFailing = false;
      // A fallback is a version no bus message announced: the message was lost or Redis is away.
      if (latest > this.committed) {
        this.committed = latest;
        this.options.metrics.pollFallbacks.inc();
      }
      if (latest > this.policy.version) await this.catchUp("poll");
    } catch (error) {
      if (!this.pollFailing) this.log.warn("cannot poll the policy store; serving the last good policy", { error, version: this.policy.version });
      this.pollFailing = true;
    } finally {
      this.schedulePoll();
    }
  }

  /** Stops polling and flushes pending key-use records. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.pollTimer);
    clearTimeout(this.minVersionTimer);
    await this.running;
    await this.keyUse.close();
  }
}
