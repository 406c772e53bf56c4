/**
 * A credential never mints a credential wider than itself: an API key created or rotated by a
 * caller stays within the caller's tenant, permissions and expiry. A field the request leaves empty
 * takes the caller's own limit; asking for more is PERMISSION_DENIED, naming the limit. A
 * credential limited to one tenant sees and acts on objects of that tenant only, and a narrowed key
 * lists and revokes only keys within its tenant and permissions (unless it may manage every key).
 */
import { patternsCover } from "../core/patterns.js";
import type { CredentialLimits } from "./caller-auth.js";
import { ApiError } from "./errors.js";

/** The scope of an API key: what CreateApiKey asks for, or what an existing key holds. */
export interface KeyScope {
  /** "" for every tenant the owner's roles reach. */
  readonly tenant: string;
  /** Empty for the owner's permissions. */
  readonly permissions: readonly string[];
  /** 0 for never. */
  readonly expiresAtMs: number;
}

const denied = (message: string) => new ApiError("permission_denied", message);
const iso = (ms: number) => new Date(ms).toISOString();

/** The scope of a key created by a caller with `limits` asking for `ask`; throws if it is wider. */
export function keyScopeWithin(limits: CredentialLimits, ask: KeyScope): KeyScope {
  const scope = {
    tenant: ask.tenant === "" ? limits.tenant : ask.tenant,
    permissions: ask.permissions.length === 0 ? limits.permissions : ask.permissions,
    expiresAtMs: ask.expiresAtMs === 0 ? limits.expiresAtMs : ask.expiresAtMs,
  };
  requireWithin(limits, scope, "cannot create a key");
  return scope;
}

/** Throws unless a key of `scope` is within `limits` (RotateApiKey hands out its new secret). */
export function requireKeyWithin(limits: CredentialLimits, scope: KeyScope): void {
  requireWithin(limits, scope, "cannot rotate a key");
}

/**
 * Throws unless a key of `scope` is within `limits` in tenant and permissions: the keys a narrowed
 * credential may revoke without admin:keys in every tenant (`hint` says so in the message).
 */
export function requireRevocableWithin(limits: CredentialLimits, scope: Omit<KeyScope, "expiresAtMs">, hint: string): void {
  const what = "cannot revoke a key";
  requireTenantWithin(limits, scope.tenant, what);
  requirePermissionsWithin(limits, scope.permissions, what, hint);
}

/**
 * True when a key of `scope` is within `limits` in tenant and permissions: the keys a narrowed
 * credential may list without admin:keys in every tenant.
 */
export function keyWithin(limits: CredentialLimits, scope: Omit<KeyScope, "expiresAtMs">): boolean {
  if (!withinTenant(limits, scope.tenant)) return false;
  if (limits.permissions.length === 0) return true;
  return scope.permissions.length > 0 && scope.permissions.every((p) => patternsCover(limits.permissions, p));
}

/** True when a credential with `limits` may see an object of `tenant` ("": of every tenant). */
export function withinTenant(limits: CredentialLimits, tenant: string): boolean {
  return limits.tenant === "" || tenant === limits.tenant;
}

/**
 * Throws unless a credential with `limits` may act on an object of `tenant` ("": valid in every
 * tenant): a credential limited to one tenant acts on that tenant's objects only.
 */
export function requireTenantWithin(limits: CredentialLimits, tenant: string, what: string): void {
  if (withinTenant(limits, tenant)) return;
  const where = tenant === "" ? "valid in every tenant" : `for tenant ${tenant}`;
  throw denied(`this credential is limited to tenant ${limits.tenant}: it ${what} ${where}`);
}

function requirePermissionsWithin(limits: CredentialLimits, permissions: readonly string[], what: string, hint = ""): void {
  if (limits.permissions.length === 0) return;
  const narrowed = `this credential is narrowed to ${limits.permissions.join(", ")}: it ${what}`;
  if (permissions.length === 0) throw denied(`${narrowed} with all of its owner's permissions${hint}`);
  const wider = permissions.find((p) => !patternsCover(limits.permissions, p));
  if (wider !== undefined) throw denied(`${narrowed} with ${wider}${hint}`);
}

function requireWithin(limits: CredentialLimits, scope: KeyScope, what: string): void {
  requireTenantWithin(limits, scope.tenant, what);
  requirePermissionsWithin(limits, scope.permissions, what);
  if (limits.expiresAtMs !== 0 && (scope.expiresAtMs === 0 || scope.expiresAtMs > limits.expiresAtMs)) {
    const until = scope.expiresAtMs === 0 ? "that never expires" : `that expires at ${iso(scope.expiresAtMs)}`;
    throw denied(`this credential ends at ${iso(limits.expiresAtMs)}: it ${what} ${until}`);
  }
}
