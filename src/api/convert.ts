/**
 * Conversions between core records and wire messages. Wire types stop here: the core never sees them.
 */
import { create } from "@bufbuild/protobuf";
import type { PrincipalView, ReasonCode } from "../core/decision.js";
import type { RateAnswer } from "../core/rate-limit.js";
import type { ApiKeyRecord, BindingRecord, RoleRecord, TenantRecord, UserRecord } from "../core/model.js";
import {
  type ApiKey,
  ApiKeySchema,
  type Principal,
  PrincipalKind,
  PrincipalSchema,
  Reason,
  RateLimitScope,
  type RateLimitStatus,
  RateLimitWindow,
  type RoleBinding,
  RoleBindingSchema,
  type Role,
  RoleSchema,
  type Tenant,
  TenantSchema,
  type User,
  UserSchema,
} from "../../gen/verdict/v1/types_pb.js";

/** The proto enum value of a reason code. */
export function toProtoReason(reason: ReasonCode): Reason {
  return Reason[reason];
}

const SCOPES = { default: RateLimitScope.DEFAULT, key: RateLimitScope.KEY, role: RateLimitScope.ROLE, tenant: RateLimitScope.TENANT, route: RateLimitScope.ROUTE } as const;
const WINDOWS = { minute: RateLimitWindow.MINUTE, hour: RateLimitWindow.HOUR, burst: RateLimitWindow.BURST } as const;

/** The wire form of a credential's rate-limit standing (undefined when no bound applies). */
export function toRateLimitStatus(rate: RateAnswer | undefined): RateLimitStatus | undefined {
  if (!rate?.bound) return undefined;
  return {
    $typeName: "verdict.v1.RateLimitStatus",
    limit: rate.bound.limit,
    remaining: Math.max(0, rate.remaining),
    resetSeconds: Math.ceil(rate.resetMs / 1000),
    scope: SCOPES[rate.bound.scope],
    window: WINDOWS[rate.bound.window],
  };
}

const principals = new WeakMap<PrincipalView, Principal>();

/** The wire form of a principal view; cached per view (views are immutable and reused). */
export function toPrincipal(view: PrincipalView | undefined): Principal | undefined {
  if (!view) return undefined;
  let p = principals.get(view);
  if (!p) {
    p = create(PrincipalSchema, {
      kind: view.kind === "api_key" ? PrincipalKind.API_KEY : PrincipalKind.USER,
      userId: view.userId,
      username: view.username,
      keyId: view.keyId,
      tenant: view.tenant,
      roles: [...view.roles],
    });
    principals.set(view, p);
  }
  return p;
}

/** Wire form of a tenant. */
export function toTenant(t: TenantRecord): Tenant {
  return create(TenantSchema, { id: t.id, displayName: t.displayName, disabled: t.disabled, createTimeUnixMs: BigInt(t.createdAtMs) });
}

/** Wire form of a user (never with its password hash). */
export function toUser(u: UserRecord): User {
  return create(UserSchema, {
    id: u.id,
    username: u.username,
    disabled: u.disabled,
    root: u.root,
    createTimeUnixMs: BigInt(u.createdAtMs),
    externalIssuer: u.externalIssuer,
    externalSubject: u.externalSubject,
  });
}

/** Wire form of a role. */
export function toRole(r: RoleRecord): Role {
  return create(RoleSchema, { name: r.name, permissions: [...r.permissions], description: r.description, builtin: r.builtin });
}

/** Wire form of a binding. */
export function toBinding(b: BindingRecord): RoleBinding {
  return create(RoleBindingSchema, { tenant: b.tenant, userId: b.userId, role: b.role });
}

/** Wire form of an API key (never with its hash). */
export function toApiKey(k: ApiKeyRecord): ApiKey {
  return create(ApiKeySchema, {
    id: k.id,
    name: k.name,
    ownerUserId: k.ownerUserId,
    permissions: [...k.permissions],
    tenant: k.tenant,
    createTimeUnixMs: BigInt(k.createdAtMs),
    expireTimeUnixMs: BigInt(k.expiresAtMs),
    revokeTimeUnixMs: BigInt(k.revokedAtMs),
    lastUsedTimeUnixMs: BigInt(k.lastUsedAtMs),
  });
}
