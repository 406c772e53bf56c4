/**
 * The rate-limit part of AdminService: limits set for one API key, role or tenant, validated when
 * written, stored with a change-log entry and applied on every replica by version.
 */
import { create } from "@bufbuild/protobuf";
import { isKeyId } from "../authn/api-key.js";
import { ALL_TENANTS } from "../core/model.js";
import { type ConfigurableScope, type ConfiguredLimit, type RateLimitSpec, rateLimitSpecProblem } from "../core/rate-limit.js";
import type { Engine } from "../engine/engine.js";
import type { Store } from "../store/store.js";
import * as pb from "../../gen/verdict/v1/admin_pb.js";
import { type RateLimit, RateLimitSchema } from "../../gen/verdict/v1/types_pb.js";
import type { Caller, CallerAuth } from "./caller-auth.js";
import { ApiError } from "./errors.js";
import type { CallContext, Handlers } from "./rpc.js";

/** What the rate-limit handlers need from the admin service. */
export interface RateLimitAdminOptions {
  readonly store: Store;
  readonly engine: Engine;
  readonly authenticate: CallerAuth["authenticate"];
  readonly authorizeAuthenticated: CallerAuth["authorizeAuthenticated"];
  /** Applies a committed version here, announces it and audits the change; returns the version. */
  readonly commit: (version: number, what: string, caller: Caller, fields: Record<string, unknown>) => Promise<bigint>;
}

type RateLimitHandlers = Pick<Handlers<typeof pb.AdminService>, "setRateLimit" | "getRateLimit" | "deleteRateLimit" | "listRateLimits">;

const PERMISSION: Record<ConfigurableScope, string> = { key: "admin:keys", role: "admin:roles", tenant: "admin:tenants" };

function toSpec(limit: RateLimit): RateLimitSpec {
  return { perMinute: limit.perMinute, perHour: limit.perHour, burst: limit.burst, shadow: limit.shadow };
}

function toWire(spec: RateLimitSpec): RateLimit {
  return create(RateLimitSchema, spec);
}

function toTarget(scope: ConfigurableScope, id: string): pb.RateLimitTarget {
  const target = scope === "key" ? { case: "keyId" as const, value: id } : { case: scope, value: id };
  return create(pb.RateLimitTargetSchema, { target });
}

/** Creates the SetRateLimit, GetRateLimit, DeleteRateLimit and ListRateLimits handlers. */
export function createRateLimitAdmin(options: RateLimitAdminOptions): RateLimitHandlers {
  const { store, engine, authenticate, authorizeAuthenticated, commit } = options;

  /**
   * The scope and id a target names, and the caller allowed to manage it; the target is checked to
   * exist only then, so that only such a caller learns whether it does.
   */
  async function resolve(target: pb.RateLimitTarget | undefined, ctx: CallContext): Promise<{ scope: ConfigurableScope; id: string; caller: Caller }> {
    const authenticated = await authenticate(ctx);
    const t = target?.target;
    if (!t?.case) throw new ApiError("invalid_argument", "target is required: key_id, role or tenant");
    const scope: ConfigurableScope = t.case === "keyId" ? "key" : t.case;
    const caller = authorizeAuthenticated(authenticated, PERMISSION[scope], ALL_TENANTS);
    const p = engine.current;
    if (scope === "key") {
      if (!isKeyId(t.value)) throw new ApiError("invalid_argument", "key_id must be an API key id (12 characters of a-z, 2-7)");
      if (!p.getApiKey(t.value)) throw new ApiError("not_found", `API key ${t.value} not found`);
    } else if (scope === "role") {
      if (!p.getRole(t.value)) throw new ApiError("not_found", `role ${JSON.stringify(t.value.slice(0, 128))} not found`);
    } else if (!p.getTenant(t.value)) {
      throw new ApiError("not_found", `tenant ${JSON.stringify(t.value.slice(0, 128))} not found`);
    }
    return { scope, id: t.value, caller };
  }

  return {
    async setRateLimit(req, ctx) {
      const { scope, id, caller } = await resolve(req.target, ctx);
      if (!req.limit) throw new ApiError("invalid_argument", "limit is required (per_minute, per_hour, burst, shadow; 0 switches a window off)");
      const spec = toSpec(req.limit);
      const problem = rateLimitSpecProblem(spec);
      if (problem) throw new ApiError("invalid_argument", problem);
      const limit: ConfiguredLimit = { scope, id, spec };
      const { version } = await store.putRateLimit(limit, caller.actor);
      return create(pb.SetRateLimitResponseSchema, { version: await commit(version, "rate limit set", caller, { scope, subject: id, ...spec }) });
    },
    async getRateLimit(req, ctx) {
      const { scope, id } = await resolve(req.target, ctx);
      const found = await store.getRateLimit(scope, id);
      if (!found) throw new ApiError("not_found", `no rate limit is set for ${scope} ${JSON.stringify(id)}`);
      return create(pb.GetRateLimitResponseSchema, { limit: toWire(found.spec) });
    },
    async deleteRateLimit(req, ctx) {
      const { scope, id, caller } = await resolve(req.target, ctx);
      const { version } = await store.deleteRateLimit(scope, id, caller.actor);
      return create(pb.DeleteRateLimitResponseSchema, { version: await commit(version, "rate limit deleted", caller, { scope, subject: id }) });
    },
    async listRateLimits(_req, ctx) {
      const authenticated = await authenticate(ctx);
      for (const permission of Object.values(PERMISSION)) authorizeAuthenticated(authenticated, permission, ALL_TENANTS);
      const limits = await store.listRateLimits();
      return create(pb.ListRateLimitsResponseSchema, {
        limits: limits.map((l) => create(pb.TargetRateLimitSchema, { target: toTarget(l.scope, l.id), limit: toWire(l.spec) })),
      });
    },
  };
}
