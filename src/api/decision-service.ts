/**
 * DecisionService: Check and CheckBatch, answered from the engine's memory.
 */
import { create } from "@bufbuild/protobuf";
import { performance } from "node:perf_hooks";
import type { Decision } from "../core/decision.js";
import { deny } from "../core/decision.js";
import type { Engine, Resolved } from "../engine/engine.js";
import type { DecisionAudit } from "../observability/audit.js";
import type { Metrics } from "../observability/metrics.js";
import {
  ActionDecisionSchema,
  type CheckBatchResponse,
  CheckBatchResponseSchema,
  type CheckResponse,
  type DecisionService,
} from "../../gen/verdict/v1/decision_pb.js";
import { toPrincipal, toProtoReason, toRateLimitStatus } from "./convert.js";
import { createDecisionIds } from "./decision-ids.js";
import { ApiError } from "./errors.js";
import { presentedCredential } from "./presented-credential.js";
import type { CallContext, Handlers } from "./rpc.js";

/** Most actions one CheckBatch may ask about. */
export const MAX_BATCH_ACTIONS = 256;

/** The permission a caller must hold when Check requires a caller credential. */
export const CHECK_CALLER_PERMISSION = "check:decisions";

/** Settings of the decision service. */
export interface DecisionServiceOptions {
  readonly engine: Engine;
  readonly metrics: Metrics;
  readonly requireCaller: boolean;
  readonly minVersionWaitMs: number;
  /** Where decisions are audited (every denial, sampled allows). */
  readonly audit?: DecisionAudit;
}

/** The credential asked about: the request's, or when it is empty the session cookie of an HTTP call. */
function subjectCredential(credential: string, ctx: CallContext): string {
  return credential !== "" ? credential : (ctx.sessionCookie?.() ?? "");
}

/** Creates the DecisionService handlers. */
export function createDecisionService(options: DecisionServiceOptions): Handlers<typeof DecisionService> {
  const { engine, metrics, requireCaller, minVersionWaitMs, audit } = options;
  const nextId = createDecisionIds();
  const checkTimer = metrics.checkDuration.labels("check");
  const batchTimer = metrics.checkDuration.labels("check_batch");

  const callerDenial = (ctx: CallContext, tenant: string): Decision | Promise<Decision | undefined> | undefined => {
    if (!requireCaller) return undefined;
    const resolved = engine.resolve(presentedCredential(ctx));
    const judge = (r: Resolved) => {
      const d = engine.decideResolved(r, CHECK_CALLER_PERMISSION, tenant);
      return d.allowed ? undefined : deny(d.reason === "FORBIDDEN" ? "FORBIDDEN" : "UNAUTHENTICATED", `caller may not ask: ${d.message}`, d.version);
    };
    return resolved instanceof Promise ? resolved.then(judge) : judge(resolved);
  };

  const staleDecision = (): Decision => {
    metrics.staleAnswers.inc();
    return deny("STALE", "this replica could not reach the requested min_version in time", engine.version);
  };

  const respond = (d: Decision, started: number, action: string, tenant: string): CheckResponse => {
    metrics.countDecision("check", d.allowed, d.reason);
    checkTimer.observe((performance.now() - started) / 1000);
    const decisionId = nextId();
    audit?.record("check", d, action, tenant, decisionId);
    return {
      $typeName: "verdict.v1.CheckResponse",
      allowed: d.allowed,
      reason: toProtoReason(d.reason),
      message: d.message,
      principal: toPrincipal(d.principal),
      policyVersion: BigInt(d.version),
      decisionId,
      rateLimit: toRateLimitStatus(d.rate),
    };
  };

  return {
    check(req, ctx) {
      const started = performance.now();
      const cost = req.cost ?? 1;
      const gate = callerDenial(ctx, req.tenant);
      const decide = (denied: Decision | undefined): CheckResponse | Promise<CheckResponse> => {
        if (denied) return respond(denied, started, req.action, req.tenant);
        const min = Number(req.minVersion);
        if (min > engine.version) {
          return engine.waitForVersion(min, minVersionWaitMs).then(async (ok) =>
            respond(ok ? await engine.check(subjectCredential(req.credential, ctx), req.action, req.tenant, cost) : staleDecision(), started, req.action, req.tenant),
          );
        }
        const d = engine.check(subjectCredential(req.credential, ctx), req.action, req.tenant, cost);
        return d instanceof Promise ? d.then((x) => respond(x, started, req.action, req.tenant)) : respond(d, started, req.action, req.tenant);
      };
      return gate instanceof Promise ? gate.then(decide) : decide(gate);
    },

    async checkBatch(req, ctx): Promise<CheckBatchResponse> {
      const started = performance.now();
      if (req.actions.length > MAX_BATCH_ACTIONS) {
        throw new ApiError("invalid_argument", `at most ${MAX_BATCH_ACTIONS} actions per CheckBatch`);
      }
      const denied = await callerDenial(ctx, req.tenant);
      const min = Number(req.minVersion);
      const fresh = min <= engine.version || (await engine.waitForVersion(min, minVersionWaitMs));
      const resolved: Resolved = denied
        ? { kind: "denied", decision: denied }
        : !fresh
          ? { kind: "denied", decision: staleDecision() }
          : await engine.resolve(subjectCredential(req.credential, ctx));
      const decided = req.actions.map((action) => engine.decideResolved(resolved, action, req.tenant));
      // The batch spends its cost once, for the principal any of its answers names.
      const first = decided.find((d) => d.principal !== undefined);
      const limited = first ? engine.limit(first, req.cost ?? 1) : undefined;
      const rate = limited?.rate;
      let principal: Decision["principal"];
      const decisionId = nextId();
      const decisions = decided.map((undecided, i) => {
        const action = req.actions[i];
        const d = limited?.reason === "RATE_LIMITED" ? limited : undecided;
        principal ??= d.principal;
        metrics.countDecision("check_batch", d.allowed, d.reason);
        audit?.record("check_batch", d, action, req.tenant, decisionId);
        return create(ActionDecisionSchema, { action, allowed: d.allowed, reason: toProtoReason(d.reason) });
      });
      const response = create(CheckBatchResponseSchema, {
        decisions,
        principal: toPrincipal(principal),
        policyVersion: BigInt(engine.version),
        decisionId,
        rateLimit: toRateLimitStatus(rate),
      });
      batchTimer.observe((performance.now() - started) / 1000);
      return response;
    },
  };
}
