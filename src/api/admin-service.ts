/**
 * AdminService: tenants, users, roles, bindings, API keys and rate limits (admin-rate-limits.ts). Every call authenticates its caller
 * and checks an `admin:<resource>` permission (in the tenant concerned, or in every tenant for
 * global objects); every mutation commits in the store, is applied here before the call returns,
 * and is announced to the other replicas.
 */
import { create } from "@bufbuild/protobuf";
import { randomUUID } from "node:crypto";
import { isKeyId, mintApiKey } from "../authn/api-key.js";
import { type PasswordHasher, passwordProblem } from "../authn/password.js";
import { SUPER_ROLE, builtinRoleIgnoringCase, isBuiltinRole } from "../core/builtin-roles.js";
import { parseGrant } from "../core/grant.js";
import { ALL_TENANTS, type ApiKeyGrant, type BindingRecord, type UserRecord } from "../core/model.js";
import { isValidRoleName, isValidTenantId, isValidUsername, MAX_NAME_LENGTH } from "../core/names.js";
import { patternsCover, validatePatterns } from "../core/patterns.js";
import type { Engine } from "../engine/engine.js";
import type { Logger } from "../observability/logger.js";
import type { Store } from "../store/store.js";
import * as pb from "../../gen/verdict/v1/admin_pb.js";
import { createRateLimitAdmin } from "./admin-rate-limits.js";
import { toApiKey, toBinding, toRole, toTenant, toUser } from "./convert.js";
import { type Authenticated, type Caller, type CredentialLimits, createCallerAuth } from "./caller-auth.js";
import { keyScopeWithin, keyWithin, requireKeyWithin, requireRevocableWithin, requireTenantWithin, withinTenant } from "./credential-limits.js";
import { type PasswordCheck, tooManyFailures } from "./password-check.js";
import { ApiError } from "./errors.js";
import type { CallContext, Handlers } from "./rpc.js";
import { refusingControlCharacters } from "./text-fields.js";

/** Settings of the admin service. */
export interface AdminServiceOptions {
  readonly store: Store;
  readonly engine: Engine;
  readonly passwords: PasswordHasher;
  /** Checks Basic credentials under the login limits. */
  readonly passwordCheck: PasswordCheck;
  readonly logger: Logger;
  /** Called after every change to role bindings (root switch-off after setup). */
  readonly afterBindingChange?: () => Promise<void>;
  readonly now?: () => number;
}

const MAX_PERMISSIONS = 256;
/** 9999-12-31T23:59:59.999Z: the latest time a request may name. */
const MAX_TIME_MS = 253_402_300_799_999;

/** Creates the AdminService handlers. */
export function createAdminService(options: AdminServiceOptions): Handlers<typeof pb.AdminService> {
  const { store, engine, passwords } = options;
  const now = options.now ?? Date.now;
  const audit = options.logger.child({ component: "audit" });

  const { authenticate, authorize, authorizeAuthenticated, allows } = createCallerAuth({ engine, passwordCheck: options.passwordCheck });

  /** Applies a committed version locally, announces it, and returns it for the response. */
  async function commit(version: number, what: string, caller: Caller | undefined, fields: Record<string, unknown>): Promise<bigint> {
    await engine.commit(version);
    audit.info(what, { version, actor: caller?.actor.userId, actorKey: caller?.actor.keyId, ...fields });
    return BigInt(version);
  }

  function findUser(ref: string): UserRecord {
    if (ref === "") throw new ApiError("invalid_argument", "user is required");
    const p = engine.current;
    const user = p.getUser(ref) ?? p.getUserByUsername(ref);
    if (!user) throw new ApiError("not_found", `user ${JSON.stringify(ref.slice(0, MAX_NAME_LENGTH))} not found`);
    return user;
  }

  function requireTenantId(tenant: string, allowAll: boolean): void {
    if (tenant === ALL_TENANTS && allowAll) return;
    if (!isValidTenantId(tenant)) throw new ApiError("invalid_argument", "tenant must be 1 to 63 of a-z, 0-9, '-', '_'" + (allowAll ? ', or "*"' : ""));
  }

  function requireTenant(tenant: string): void {
    requireTenantId(tenant, false);
    if (!engine.current.getTenant(tenant)) throw new ApiError("not_found", `tenant ${tenant} not found`);
  }

  /**
   * Authenticates the caller, then checks `action` in `tenant` ("*": in every tenant). Whether the
   * tenant exists is told only to a caller allowed the action in every tenant (caller-auth.ts).
   */
  async function authorizeInTenant(ctx: CallContext, action: string, tenant: string): Promise<Caller> {
    const authenticated = await authenticate(ctx);
    requireTenantId(tenant, true);
    return authorizeAuthenticated(authenticated, action, tenant);
  }

  /**
   * The user `ref` names ("" for the caller): the caller itself, or another user once the caller
   * is allowed `action` in every tenant; whether another user exists is told to no one else.
   */
  function userActedOn(authenticated: Authenticated, ref: string, action: string): UserRecord {
    const { caller } = authenticated;
    const p = engine.current;
    const user = ref === "" ? p.getUser(caller.userId) : (p.getUser(ref) ?? p.getUserByUsername(ref));
    if (user?.id !== caller.userId) authorizeAuthenticated(authenticated, action, ALL_TENANTS);
    if (!user) throw new ApiError("not_found", `user ${JSON.stringify(ref.slice(0, MAX_NAME_LENGTH))} not found`);
    return user;
  }

  function requireRole(name: string): void {
    if (name === SUPER_ROLE) throw new ApiError("permission_denied", "SUPER is held by root only and cannot be bound");
    if (!engine.current.getRole(name)) throw new ApiError("not_found", `role ${JSON.stringify(name.slice(0, MAX_NAME_LENGTH))} not found`);
  }

  function checkPermissions(patterns: readonly string[]): void {
    if (patterns.length > MAX_PERMISSIONS) throw new ApiError("invalid_argument", `at most ${MAX_PERMISSIONS} permissions`);
    validatePatterns(patterns);
  }

  /**
   * Handing out permissions (binding a role, writing a role's patterns) needs the caller to hold
   * each of them there itself, through its roles and within its key's narrowing: no escalation.
   */
  function requireHeld(caller: Caller, patterns: readonly string[], tenant: string, what: string): void {
    const held = engine.current.permissionsFor(caller.userId, tenant);
    const narrowed = caller.limits.permissions;
    const missing = patterns.find((p) => !patternsCover(held, p) || (narrowed.length > 0 && !patternsCover(narrowed, p)));
    if (missing !== undefined) {
      const where = tenant === ALL_TENANTS ? "in every tenant" : `in tenant ${tenant}`;
      throw new ApiError("permission_denied", `the caller does not hold ${missing} ${where}, so it cannot ${what}`);
    }
  }

  function requireGrantable(caller: Caller, binding: BindingRecord): void {
    const role = engine.current.getRole(binding.role);
    if (role) requireHeld(caller, role.permissions, binding.tenant, `grant role ${role.name}`);
  }

  async function changeBindings(caller: Caller, op: "grant" | "revoke", bindings: BindingRecord[]): Promise<bigint> {
    if (op === "grant") for (const binding of bindings) requireGrantable(caller, binding);
    const committed = op === "grant" ? await store.bindRoles(bindings, caller.actor) : await store.unbindRoles(bindings, caller.actor);
    const version = await commit(committed.version, op === "grant" ? "roles bound" : "roles unbound", caller, {
      bindings: bindings.map((b) => `${b.role}@${b.tenant}:${b.userId}`),
    });
    await options.afterBindingChange?.();
    return version;
  }

  /**
   * The caller's limits for minting: an access token of a Verdict session may mint up to the
   * session's end (the family it belongs to lives that long), not only to the token's exp.
   */
  async function mintingLimits(caller: Caller): Promise<CredentialLimits> {
    const { limits } = caller;
    if (limits.sessionId === "") return limits;
    const [session] = await store.getSessions([limits.sessionId]);
    if (!session || session.revokedAtMs !== 0 || session.expiresAtMs <= now()) throw new ApiError("unauthenticated", "the session of this access token has ended");
    return { ...limits, expiresAtMs: session.expiresAtMs };
  }

  /** Verifies a user's current password, within the same limit on guessing as Login. */
  async function requireCurrentPassword(user: UserRecord, currentPassword: string, ctx: CallContext): Promise<void> {
    if (currentPassword === "") {
      throw new ApiError("permission_denied", "changing your own password with an API key or token needs current_password (or authenticate with your password)");
    }
    const result = await options.passwordCheck(ctx, user.username, currentPassword);
    if (result.kind === "limited") throw tooManyFailures(result.retryAfterMs);
    if (result.kind === "wrong" || result.user.id !== user.id) {
      audit.warn("password change refused: wrong current password", { user: user.id, peer: ctx.peer });
      throw new ApiError("permission_denied", "current_password is wrong");
    }
  }

  /**
   * Keys the caller may manage: its own, or any with admin:keys in every tenant; a credential
   * limited to one tenant sees and manages keys of that tenant only.
   */
  async function authorizeKeyOwner(ctx: CallContext, ownerRef: string): Promise<{ authenticated: Authenticated; caller: Caller; ownerId: string }> {
    const authenticated = await authenticate(ctx);
    return { authenticated, caller: authenticated.caller, ownerId: userActedOn(authenticated, ownerRef, "admin:keys").id };
  }

  /**
   * The key a caller revokes or rotates: its own, or any with admin:keys in every tenant. Whether
   * a key of another user, or no key, has that id is told only to the latter.
   */
  async function keyFor(ctx: CallContext, id: string): Promise<{ authenticated: Authenticated; caller: Caller; key: ApiKeyGrant }> {
    const authenticated = await authenticate(ctx);
    const { caller } = authenticated;
    if (!isKeyId(id)) throw new ApiError("invalid_argument", "id must be an API key id (12 characters of a-z, 2-7)");
    const key = engine.current.getApiKey(id);
    if (key?.ownerUserId !== caller.userId) authorizeAuthenticated(authenticated, "admin:keys", ALL_TENANTS);
    if (!key) throw new ApiError("not_found", `API key ${id} not found`);
    requireTenantWithin(caller.limits, key.tenant, `cannot manage API key ${id}, which is`);
    return { authenticated, caller, key };
  }

  const handlers: Handlers<typeof pb.AdminService> = {
    async createTenant(req, ctx) {
      const caller = await authorize(ctx, "admin:tenants", ALL_TENANTS);
      if (!isValidTenantId(req.id)) throw new ApiError("invalid_argument", "id must be 1 to 63 of a-z, 0-9, '-', '_', starting with a letter or digit");
      if (req.displayName.length > 256) throw new ApiError("invalid_argument", "display_name must be at most 256 characters");
      const { value, version } = await store.createTenant({ id: req.id, displayName: req.displayName, disabled: false, createdAtMs: now() }, caller.actor);
      return create(pb.CreateTenantResponseSchema, { tenant: toTenant(value), version: await commit(version, "tenant created", caller, { tenant: req.id }) });
    },
    async listTenants(_req, ctx) {
      await authorize(ctx, "admin:tenants", ALL_TENANTS);
      return create(pb.ListTenantsResponseSchema, { tenants: (await store.listTenants()).map(toTenant) });
    },
    async setTenantDisabled(req, ctx) {
      const caller = await authorize(ctx, "admin:tenants", ALL_TENANTS);
      requireTenant(req.id);
      const { version } = await store.setTenantDisabled(req.id, req.disabled, caller.actor);
      return create(pb.SetTenantDisabledResponseSchema, { version: await commit(version, "tenant disabled set", caller, { tenant: req.id, disabled: req.disabled }) });
    },
    async deleteTenant(req, ctx) {
      const caller = await authorize(ctx, "admin:tenants", ALL_TENANTS);
      requireTenant(req.id);
      const { version } = await store.deleteTenant(req.id, caller.actor);
      return create(pb.DeleteTenantResponseSchema, { version: await commit(version, "tenant deleted", caller, { tenant: req.id }) });
    },

    async createUser(req, ctx) {
      const caller = await authorize(ctx, "admin:users", ALL_TENANTS);
      if (!isValidUsername(req.username)) throw new ApiError("invalid_argument", "username must be 1 to 128 of letters, digits, '_', '.', '@', '-', starting with a letter or digit");
      const problem = passwordProblem(req.password);
      if (problem) throw new ApiError("invalid_argument", problem);
      if (engine.current.getUserByUsername(req.username)) throw new ApiError("already_exists", `user ${req.username} already exists`);
      const hash = await passwords.hash(req.password);
      const user: UserRecord = { id: randomUUID(), username: req.username, disabled: false, root: false, createdAtMs: now(), externalIssuer: "", externalSubject: "" };
      const { value, version } = await store.createUser(user, hash, caller.actor);
      return create(pb.CreateUserResponseSchema, { user: toUser(value), version: await commit(version, "user created", caller, { user: user.id, username: user.username }) });
    },
    async getUser(req, ctx) {
      await authorize(ctx, "admin:users", ALL_TENANTS);
      const user = findUser(req.user);
      return create(pb.GetUserResponseSchema, { user: toUser(user), bindings: engine.current.getBindings(user.id).map(toBinding) });
    },
    async listUsers(_req, ctx) {
      await authorize(ctx, "admin:users", ALL_TENANTS);
      return create(pb.ListUsersResponseSchema, { users: (await store.listUsers()).map(toUser) });
    },
    async setUserDisabled(req, ctx) {
      const caller = await authorize(ctx, "admin:users", ALL_TENANTS);
      const user = findUser(req.user);
      if (user.id === caller.userId && req.disabled) throw new ApiError("failed_precondition", "you cannot disable yourself");
      const { version } = await store.setUserDisabled(user.id, req.disabled, caller.actor);
      const what = req.disabled ? "user disabled; sessions revoked" : "user enabled";
      return create(pb.SetUserDisabledResponseSchema, { version: await commit(version, what, caller, { user: user.id, disabled: req.disabled }) });
    },
    async deleteUser(req, ctx) {
      const caller = await authorize(ctx, "admin:users", ALL_TENANTS);
      const user = findUser(req.user);
      if (user.id === caller.userId) throw new ApiError("failed_precondition", "you cannot delete yourself");
      const { version } = await store.deleteUser(user.id, caller.actor);
      return create(pb.DeleteUserResponseSchema, { version: await commit(version, "user deleted", caller, { user: user.id }) });
    },
    async listLinkedIdentities(req, ctx) {
      await authorize(ctx, "admin:users", ALL_TENANTS);
      const user = findUser(req.user);
      const identities = await store.identities.listLinkedIdentities(user.id);
      return create(pb.ListLinkedIdentitiesResponseSchema, {
        identities: identities.map((i) => create(pb.LinkedIdentitySchema, { provider: i.provider, subject: i.subject, userId: i.userId, email: i.email, createTimeUnixMs: BigInt(i.createdAtMs) })),
      });
    },
    async removeLinkedIdentity(req, ctx) {
      const caller = await authorize(ctx, "admin:users", ALL_TENANTS);
      const user = findUser(req.user);
      if (req.provider === "" || req.subject === "") throw new ApiError("invalid_argument", "provider and subject are required");
      const { value, version } = await store.identities.removeLinkedIdentity(user.id, req.provider, req.subject, now(), caller.actor);
      return create(pb.RemoveLinkedIdentityResponseSchema, {
        revokedSessions: value,
        version: await commit(version, "linked identity removed", caller, { user: user.id, provider: req.provider, revokedSessions: value }),
      });
    },
    async changePassword(req, ctx) {
      const authenticated = await authenticate(ctx);
      const { caller } = authenticated;
      const { limits } = caller;
      const user = userActedOn(authenticated, req.user, "admin:users");
      const own = user.id === caller.userId;
      // A password holds in every tenant, and a change revokes the user's sessions in all of them.
      requireTenantWithin(limits, "", "cannot change a password, which is");
      if (limits.permissions.length > 0) throw new ApiError("permission_denied", "an API key narrowed to some permissions cannot change passwords");
      const problem = passwordProblem(req.newPassword);
      if (problem) throw new ApiError("invalid_argument", problem);
      const keep = req.keepCurrentSession ? limits.sessionId : undefined;
      if (keep === "") throw new ApiError("invalid_argument", "keep_current_session needs the call to be made with an access token of your session");
      if (keep !== undefined && !own) throw new ApiError("invalid_argument", "keep_current_session applies only to your own password");
      // A password is wider than any key or token: proving the current one is the only way to set another.
      if (own && limits.via !== "password") await requireCurrentPassword(user, req.currentPassword, ctx);
      const { version } = await store.setPassword(user.id, await passwords.hash(req.newPassword), caller.actor, keep);
      return create(pb.ChangePasswordResponseSchema, {
        version: await commit(version, "password changed; sessions revoked", caller, { user: user.id, keptSession: keep }),
      });
    },

    async putRole(req, ctx) {
      const caller = await authorize(ctx, "admin:roles", ALL_TENANTS);
      if (!isValidRoleName(req.name)) throw new ApiError("invalid_argument", "name must be 1 to 64 of letters, digits, '_', '.', '-', starting with a letter");
      if (isBuiltinRole(req.name)) throw new ApiError("failed_precondition", `${req.name} is a built-in role and cannot be changed`);
      const builtin = builtinRoleIgnoringCase(req.name);
      if (builtin) throw new ApiError("invalid_argument", `${req.name} differs from the built-in role ${builtin} only by case; choose another name`);
      const twin = (await store.listRoles()).find((r) => r.name !== req.name && r.name.toLowerCase() === req.name.toLowerCase());
      if (twin) throw new ApiError("already_exists", `role ${twin.name} exists; role names that differ only by case are the same name`);
      checkPermissions(req.permissions);
      // Roles apply wherever they are bound, so the patterns must be held in every tenant.
      requireHeld(caller, req.permissions, ALL_TENANTS, `put them in role ${req.name}`);
      if (req.description.length > 1024) throw new ApiError("invalid_argument", "description must be at most 1024 characters");
      const role = { name: req.name, permissions: [...new Set(req.permissions)], description: req.description, builtin: false };
      const { value, version } = await store.putRole(role, caller.actor);
      return create(pb.PutRoleResponseSchema, { role: toRole(value), version: await commit(version, "role put", caller, { role: req.name, permissions: role.permissions }) });
    },
    async listRoles(_req, ctx) {
      await authorize(ctx, "admin:roles", ALL_TENANTS);
      return create(pb.ListRolesResponseSchema, { roles: (await store.listRoles()).map(toRole) });
    },
    async deleteRole(req, ctx) {
      const caller = await authorize(ctx, "admin:roles", ALL_TENANTS);
      if (isBuiltinRole(req.name)) throw new ApiError("failed_precondition", `${req.name} is a built-in role and cannot be deleted`);
      if (!engine.current.getRole(req.name)) throw new ApiError("not_found", `role ${JSON.stringify(req.name.slice(0, MAX_NAME_LENGTH))} not found`);
      const { version } = await store.deleteRole(req.name, caller.actor);
      return create(pb.DeleteRoleResponseSchema, { version: await commit(version, "role deleted", caller, { role: req.name }) });
    },

    async bindRole(req, ctx) {
      const caller = await authorizeInTenant(ctx, "admin:bindings", req.tenant);
      const user = findUser(req.user);
      requireRole(req.role);
      const version = await changeBindings(caller, "grant", [{ tenant: req.tenant, userId: user.id, role: req.role }]);
      return create(pb.BindRoleResponseSchema, { version });
    },
    async unbindRole(req, ctx) {
      const caller = await authorizeInTenant(ctx, "admin:bindings", req.tenant);
      const user = findUser(req.user);
      const version = await changeBindings(caller, "revoke", [{ tenant: req.tenant, userId: user.id, role: req.role }]);
      return create(pb.UnbindRoleResponseSchema, { version });
    },
    async listRoleBindings(req, ctx) {
      await authorizeInTenant(ctx, "admin:bindings", req.tenant === "" ? ALL_TENANTS : req.tenant);
      const bindings = await store.listBindings(req.tenant === "" ? undefined : req.tenant);
      return create(pb.ListRoleBindingsResponseSchema, { bindings: bindings.map(toBinding) });
    },
    async grant(req, ctx) {
      const caller = await authorizeInTenant(ctx, "admin:bindings", req.tenant);
      const statement = parseGrant(req.statement);
      const user = findUser(statement.user);
      if (statement.op === "grant") for (const role of statement.roles) requireRole(role);
      const bindings = statement.roles.map((role) => ({ tenant: req.tenant, userId: user.id, role }));
      const version = await changeBindings(caller, statement.op, bindings);
      return create(pb.GrantResponseSchema, { bindings: bindings.map(toBinding), version });
    },

    async createApiKey(req, ctx) {
      const { caller, ownerId } = await authorizeKeyOwner(ctx, req.owner);
      if (req.name === "" || req.name.length > MAX_NAME_LENGTH) throw new ApiError("invalid_argument", `name is required (at most ${MAX_NAME_LENGTH} characters)`);
      checkPermissions(req.permissions);
      if (req.tenant !== "") requireTenant(req.tenant);
      const asked = Number(req.expireTimeUnixMs);
      if (asked !== 0 && asked <= now()) throw new ApiError("invalid_argument", "expire_time_unix_ms lies in the past");
      if (asked > MAX_TIME_MS) throw new ApiError("invalid_argument", "expire_time_unix_ms lies after the year 9999");
      const scope = keyScopeWithin(await mintingLimits(caller), { tenant: req.tenant, permissions: [...new Set(req.permissions)], expiresAtMs: asked });
      const minted = mintApiKey();
      const record = {
        id: minted.id,
        name: req.name,
        ownerUserId: ownerId,
        permissions: scope.permissions,
        tenant: scope.tenant,
        secretHash: minted.secretHash,
        createdAtMs: now(),
        expiresAtMs: scope.expiresAtMs,
        revokedAtMs: 0,
        lastUsedAtMs: 0,
      };
      const { value, version } = await store.createApiKey(record, caller.actor);
      return create(pb.CreateApiKeyResponseSchema, {
        apiKey: toApiKey(value),
        secret: minted.secret,
        version: await commit(version, "api key created", caller, { key: record.id, owner: ownerId }),
      });
    },
    async listApiKeys(req, ctx) {
      if (req.owner === "*") {
        await authorize(ctx, "admin:keys", ALL_TENANTS);
        return create(pb.ListApiKeysResponseSchema, { apiKeys: (await store.listApiKeys()).map(toApiKey) });
      }
      const { authenticated, caller, ownerId } = await authorizeKeyOwner(ctx, req.owner);
      // A narrowed key lists no key wider than itself (a sibling of its user) unless it may manage every key.
      const manager = allows(authenticated, "admin:keys", ALL_TENANTS);
      const keys = (await store.listApiKeys(ownerId)).filter((k) => (manager ? withinTenant(caller.limits, k.tenant) : keyWithin(caller.limits, k)));
      return create(pb.ListApiKeysResponseSchema, { apiKeys: keys.map(toApiKey) });
    },
    async revokeApiKey(req, ctx) {
      const { authenticated, caller, key } = await keyFor(ctx, req.id);
      // A narrowed key revokes no key wider than itself (a sibling of its user) unless it may manage every key.
      if (!allows(authenticated, "admin:keys", ALL_TENANTS)) requireRevocableWithin(caller.limits, key, " (or needs admin:keys in every tenant)");
      const { version } = await store.revokeApiKey(req.id, now(), caller.actor);
      return create(pb.RevokeApiKeyResponseSchema, { version: await commit(version, "api key revoked", caller, { key: req.id }) });
    },
    async rotateApiKey(req, ctx) {
      const { caller, key } = await keyFor(ctx, req.id);
      if (key.revokedAtMs !== 0) throw new ApiError("failed_precondition", `API key ${req.id} is revoked`);
      requireKeyWithin(await mintingLimits(caller), key);
      const minted = mintApiKey(req.id);
      const { value, version } = await store.rotateApiKey(req.id, minted.secretHash, caller.actor);
      return create(pb.RotateApiKeyResponseSchema, {
        apiKey: toApiKey(value),
        secret: minted.secret,
        version: await commit(version, "api key rotated", caller, { key: req.id }),
      });
    },

    ...createRateLimitAdmin({ store, engine, authenticate, authorizeAuthenticated, commit }),

    async getPolicyVersion(_req, ctx) {
      await authenticate(ctx);
      const committed = await store.currentVersion();
      return create(pb.GetPolicyVersionResponseSchema, { committedVersion: BigInt(committed), appliedVersion: BigInt(engine.version) });
    },
  };
  return refusingControlCharacters(pb.AdminService, handlers);
}
