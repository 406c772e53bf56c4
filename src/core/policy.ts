/**
 * The in-memory policy: every tenant, user, role, binding and API key, indexed for Check, with
 * matchers compiled once per (user, tenant) and reused until a change touches them.
 * Pure: no I/O, no clock (callers pass `nowMs`).
 */
import { BUILTIN_ROLES, SUPER_ROLE } from "./builtin-roles.js";
import { type Decision, type PrincipalView, deny } from "./decision.js";
import {
  ALL_TENANTS,
  type ApiKeyGrant,
  type BindingRecord,
  type PolicyData,
  type RoleRecord,
  type TenantRecord,
  type UserRecord,
} from "./model.js";
import { EVERYTHING, type Matcher, NOTHING, compilePatterns, isValidAction, unionMatchers } from "./patterns.js";

/** Options of the decision rules. */
export interface PolicyOptions {
  /**
   * When true, a principal holding `adminRole` in some tenant may act in tenants where it has
   * no binding, with that role's permissions.
   */
  readonly adminOverride: boolean;
  readonly adminRole: string;
}

/** A user's standing in one tenant. */
interface Access {
  readonly member: boolean;
  readonly matcher: Matcher;
  readonly view: PrincipalView;
  /** Principal views for the user's API keys in this tenant, made on first use. */
  readonly keyViews: Map<string, PrincipalView>;
}



const MAX_TENANT_LENGTH = 63;

function externalKey(issuer: string, subject: string): string {
  return `${issuer}\u0000${subject}`;
}

/** Sizes of the indexes, for metrics. */
export interface PolicySizes {
  readonly tenants: number;
  readonly users: number;
  readonly roles: number;
  readonly bindings: number;
  readonly apiKeys: number;
}

/**
 * Holds the policy at one version and decides. Mutations come from the engine as records; every
 * mutation drops exactly the compiled state it could have changed.
 */
export class Policy {
  /** The version of the newest change applied. */
  version = 0;
  private readonly tenants = new Map<string, TenantRecord>();
  private readonly users = new Map<string, UserRecord>();
  private readonly usersByName = new Map<string, UserRecord>();
  /** Users mapped from an external identity provider, by externalKey(issuer, subject). */
  private readonly usersByExternal = new Map<string, UserRecord>();
  private readonly roles = new Map<string, { record: RoleRecord; matcher: Matcher }>();
  private readonly bindings = new Map<string, readonly BindingRecord[]>();
  // Keys are held as given (the store loads them slim); narrowed keys' matchers live apart.
  private readonly keys = new Map<string, ApiKeyGrant>();
  private readonly keysByHash = new Map<string, ApiKeyGrant>();
  private readonly keyMatchers = new Map<string, Matcher>();
  private readonly access = new Map<string, Map<string, Access>>();
  private bindingCount = 0;

  constructor(private readonly options: PolicyOptions) {
    for (const role of BUILTIN_ROLES) this.putRole(role);
  }

  /** Builds a policy from a full snapshot. */
  static fromData(data: PolicyData, options: PolicyOptions): Policy {
    const policy = new Policy(options);
    for (const _ of policy.load(data, Infinity));
    return policy;
  }

  /**
   * The policy of `data`, built as fromData builds it, awaiting `pause` after every `slice`
   * records: the engine passes a turn of the event loop, so that building a large policy (a
   * million keys take over a second) never holds the Checks the current policy keeps answering.
   * The core does no I/O: when and how to pause is the caller's.
   */
  static async fromDataInSlices(data: PolicyData, options: PolicyOptions, pause: () => Promise<void>, slice = 10_000): Promise<Policy> {
    const policy = new Policy(options);
    for (const _ of policy.load(data, slice)) await pause();
    return policy;
  }

  /** Applies `data` record by record (bindings per user), yielding after every `slice` records. */
  private *load(data: PolicyData, slice: number): Generator<void> {
    let n = 0;
    for (const t of data.tenants) {
      this.putTenant(t);
      if (++n % slice === 0) yield;
    }
    for (const u of data.users) {
      this.putUser(u);
      if (++n % slice === 0) yield;
    }
    for (const r of data.roles) {
      this.putRole(r);
      if (++n % slice === 0) yield;
    }
    const byUser = new Map<string, BindingRecord[]>();
    for (const b of data.bindings) {
      const list = byUser.get(b.userId);
      if (list) list.push(b);
      else byUser.set(b.userId, [b]);
    }
    for (const [userId, list] of byUser) {
      this.setBindings(userId, list);
      if (++n % slice === 0) yield;
    }
    for (const k of data.apiKeys) {
      this.putApiKey(k);
      if (++n % slice === 0) yield;
    }
    this.version = data.version;
  }

  // ---- reads ----

  getTenant(id: string): TenantRecord | undefined {
    return this.tenants.get(id);
  }
  getUser(id: string): UserRecord | undefined {
    return this.users.get(id);
  }
  getUserByUsername(username: string): UserRecord | undefined {
    return this.usersByName.get(username);
  }
  /** The user mapped from `subject` of external issuer `issuer`. */
  getUserByExternalIdentity(issuer: string, subject: string): UserRecord | undefined {
    return this.usersByExternal.get(externalKey(issuer, subject));
  }
  getRole(name: string): RoleRecord | undefined {
    return this.roles.get(name)?.record;
  }
  getApiKey(id: string): ApiKeyGrant | undefined {
    return this.keys.get(id);
  }
  /** The key whose full secret hashes to `secretHash`. */
  getApiKeyByHash(secretHash: string): ApiKeyGrant | undefined {
    return this.keysByHash.get(secretHash);
  }
  getBindings(userId: string): readonly BindingRecord[] {
    return this.bindings.get(userId) ?? [];
  }
  sizes(): PolicySizes {
    return {
      tenants: this.tenants.size,
      users: this.users.size,
      roles: this.roles.size,
      bindings: this.bindingCount,
      apiKeys: this.keys.size,
    };
  }

  // ---- mutations ----

  putTenant(tenant: TenantRecord): void {
    this.tenants.set(tenant.id, tenant);
  }
  removeTenant(id: string): void {
    this.tenants.delete(id);
    for (const perTenant of this.access.values()) perTenant.delete(id);
  }
  putUser(user: UserRecord): void {
    const old = this.users.get(user.id);
    if (old && old.username !== user.username) this.usersByName.delete(old.username);
    if (old && old.externalIssuer !== "") this.usersByExternal.delete(externalKey(old.externalIssuer, old.externalSubject));
    this.users.set(user.id, user);
    this.usersByName.set(user.username, user);
    if (user.externalIssuer !== "") this.usersByExternal.set(externalKey(user.externalIssuer, user.externalSubject), user);
    this.access.delete(user.id);
  }
  removeUser(id: string): void {
    const old = this.users.get(id);
    if (old) this.usersByName.delete(old.username);
    if (old && old.externalIssuer !== "") this.usersByExternal.delete(externalKey(old.externalIssuer, old.externalSubject));
    this.users.delete(id);
    this.setBindings(id, []);
  }
  putRole(role: RoleRecord): void {
    this.roles.set(role.name, { record: role, matcher: compilePatterns(role.permissions) });
    this.access.clear();
  }
  removeRole(name: string): void {
    this.roles.delete(name);
    this.access.clear();
  }
  /** Replaces all bindings of one user. */
  setBindings(userId: string, bindings: readonly BindingRecord[]): void {
    this.bindingCount += bindings.length - (this.bindings.get(userId)?.length ?? 0);
    if (bindings.length === 0) this.bindings.delete(userId);
    else this.bindings.set(userId, bindings);
    this.access.delete(userId);
  }
  /** Adds or replaces a key (the object is kept as given: pass only what decisions need). */
  putApiKey(key: ApiKeyGrant): void {
    const old = this.keys.get(key.id);
    if (old) this.keysByHash.delete(old.secretHash);
    if (key.permissions.length > 0) this.keyMatchers.set(key.id, compilePatterns(key.permissions));
    else this.keyMatchers.delete(key.id);
    this.keys.set(key.id, key);
    this.keysByHash.set(key.secretHash, key);
  }
  removeApiKey(id: string): void {
    const old = this.keys.get(id);
    if (!old) return;
    this.keys.delete(id);
    this.keysByHash.delete(old.secretHash);
    this.keyMatchers.delete(id);
  }

  // ---- decisions ----

  /**
   * Decides whether the user may perform `action` in `tenant` (ALL_TENANTS asks about bindings
   * that hold in every tenant, as administration of global objects does).
   */
  decideForUser(userId: string, action: string, tenant: string): Decision {
    const user = this.users.get(userId);
    if (!user) return deny("UNKNOWN_CREDENTIAL", "the user no longer exists", this.version);
    return this.decide(user, undefined, action, tenant);
  }

  /** Decides for an API key already found by its hash, at time `nowMs`. */
  decideForKey(key: ApiKeyGrant, action: string, tenant: string, nowMs: number): Decision {
    const owner = this.keyOwner(key, nowMs);
    return "reason" in owner ? owner : this.decide(owner, key, action, tenant);
  }

  /**
   * Why a credential already found (an API key, else a token of user `userId`) is no good for any
   * action in any tenant at time `nowMs`: the denial REVOKED, EXPIRED, DISABLED or
   * UNKNOWN_CREDENTIAL a decision would give; undefined when the credential is good.
   */
  credentialRejection(userId: string, key: ApiKeyGrant | undefined, nowMs: number): Decision | undefined {
    const user = key ? this.keyOwner(key, nowMs) : this.users.get(userId);
    if (!user) return deny("UNKNOWN_CREDENTIAL", "the user no longer exists", this.version);
    if ("reason" in user) return user;
    if (user.disabled) return deny("DISABLED", `user ${user.username} is disabled`, this.version);
    return undefined;
  }

  /** The owner of a key that is neither revoked nor expired at `nowMs`, else the denial. */
  private keyOwner(key: ApiKeyGrant, nowMs: number): UserRecord | Decision {
    if (key.revokedAtMs !== 0) return deny("REVOKED", `API key ${key.id} was revoked`, this.version);
    if (key.expiresAtMs !== 0 && nowMs >= key.expiresAtMs) {
      return deny("EXPIRED", `API key ${key.id} expired`, this.version);
    }
    return this.users.get(key.ownerUserId) ?? deny("REVOKED", `the owner of API key ${key.id} was deleted`, this.version);
  }

  /** The permission patterns a user holds in a tenant: ["*"] for root, [] for a non-member. */
  permissionsFor(userId: string, tenant: string): readonly string[] {
    const user = this.users.get(userId);
    return user ? this.accessFor(user, tenant).matcher.patterns : [];
  }

  /** The roles a user holds in a tenant, and whether it is a member. */
  principalFor(userId: string, tenant: string): PrincipalView | undefined {
    const user = this.users.get(userId);
    if (!user) return undefined;
    return this.accessFor(user, tenant).view;
  }

  private decide(user: UserRecord, key: ApiKeyGrant | undefined, action: string, tenant: string): Decision {
    const version = this.version;
    if (tenant.length === 0) return deny("INVALID_REQUEST", "tenant is empty", version);
    if (tenant.length > MAX_TENANT_LENGTH) return deny("INVALID_REQUEST", "tenant is too long", version);
    if (action.length === 0) return deny("INVALID_REQUEST", "action is empty", version);
    if (!isValidAction(action)) return deny("INVALID_REQUEST", 'action must be "verb:resource"', version);
    if (tenant !== ALL_TENANTS) {
      const t = this.tenants.get(tenant);
      if (!t) return deny("UNKNOWN_TENANT", `unknown tenant ${tenant}`, version);
      if (t.disabled) return deny("UNKNOWN_TENANT", `tenant ${tenant} is disabled`, version);
    }
    if (user.disabled) return deny("DISABLED", `user ${user.username} is disabled`, version);
    const access = this.accessFor(user, tenant);
    const principal = key ? this.keyView(access, key) : access.view;
    if (!access.member) return deny("WRONG_TENANT", `not a member of tenant ${tenant}`, version, principal);
    if (key && key.tenant !== "" && key.tenant !== tenant) {
      return deny("WRONG_TENANT", `API key ${key.id} is restricted to another tenant`, version, principal);
    }
    // A key from an older policy may have no matcher here yet: compile rather than skip narrowing.
    const narrowing = key && key.permissions.length > 0 ? (this.keyMatchers.get(key.id) ?? compilePatterns(key.permissions)) : undefined;
    const allowed = access.matcher.matches(action) && (narrowing === undefined || narrowing.matches(action));
    if (!allowed) return deny("FORBIDDEN", `no permission matches ${action}`, version, principal);
    return { allowed: true, reason: "ALLOWED", message: "", principal, version };
  }

  private keyView(access: Access, key: ApiKeyGrant): PrincipalView {
    let view = access.keyViews.get(key.id);
    if (!view) {
      view = Object.freeze({ ...access.view, kind: "api_key" as const, keyId: key.id });
      access.keyViews.set(key.id, view);
    }
    return view;
  }

  private accessFor(user: UserRecord, tenant: string): Access {
    let perTenant = this.access.get(user.id);
    if (!perTenant) {
      perTenant = new Map();
      this.access.set(user.id, perTenant);
    }
    let access = perTenant.get(tenant);
    if (!access) {
      access = this.computeAccess(user, tenant);
      perTenant.set(tenant, access);
    }
    return access;
  }

  private computeAccess(user: UserRecord, tenant: string): Access {
    const view = (roles: readonly string[]): PrincipalView =>
      Object.freeze({ kind: "user" as const, userId: user.id, username: user.username, keyId: "", tenant, roles: Object.freeze(roles) });
    if (user.root) return { member: true, matcher: EVERYTHING, view: view([SUPER_ROLE]), keyViews: new Map() };
    const bindings = this.bindings.get(user.id) ?? [];
    const roleNames = [
      ...new Set(bindings.filter((b) => b.tenant === tenant || b.tenant === ALL_TENANTS).map((b) => b.role)),
    ].filter((name) => name !== SUPER_ROLE && this.roles.has(name));
    if (roleNames.length > 0) {
      const matcher = unionMatchers(roleNames.map((name) => this.roles.get(name)!.matcher));
      return { member: true, matcher, view: view(roleNames), keyViews: new Map() };
    }
    const { adminOverride, adminRole } = this.options;
    if (adminOverride && this.roles.has(adminRole) && bindings.some((b) => b.role === adminRole)) {
      return { member: true, matcher: this.roles.get(adminRole)!.matcher, view: view([adminRole]), keyViews: new Map() };
    }
    return { member: false, matcher: NOTHING, view: view([]), keyViews: new Map() };
  }
}
