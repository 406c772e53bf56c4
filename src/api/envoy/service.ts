/**
 * The ext_authz service as the server runs it: the rules (a reloading file, or the built-in rules),
 * the adapter over the engine, and its metrics and logs, ready to mount on the gRPC server as
 * `envoy.service.auth.v3.Authorization`.
 */
import type { ServerUnaryCall, ServiceDefinition, sendUnaryData } from "@grpc/grpc-js";
import type { CheckResponse } from "../../../gen/envoy/service/auth/v3/external_auth_pb.js";
import type { Config } from "../../config/config.js";
import type { DecisionAudit } from "../../observability/audit.js";
import type { Logger } from "../../observability/logger.js";
import type { Metrics } from "../../observability/metrics.js";
import { createDecisionIds } from "../decision-ids.js";
import { malformedRequest, toGrpcError } from "../errors.js";
import type { GrpcService } from "../rpc.js";
import type { Decider } from "./decider.js";
import { createExtAuthzHandler, type ExtAuthzHandler, type ExtAuthzOutcome } from "./ext-authz.js";
import { headerNamesRead, type CheckRequestView } from "./request.js";
import { createRulesHolder } from "./rules/holder.js";
import type { CompiledRules, RulesSource } from "./rules/model.js";
import { builtInRules } from "./rules/parse.js";
import { decodeCheckRequest, encodeCheckResponse, selectHeaders, type HeaderSelection } from "./wire.js";

/** What createExtAuthzService needs. */
export interface ExtAuthzServiceOptions {
  readonly decider: Decider;
  readonly settings: Config["extAuthz"];
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Where decisions are audited (every denial, sampled allows). */
  readonly audit?: DecisionAudit;
  /** The session cookie the built-in rules read as a credential (a rules file names its own). */
  readonly sessionCookie?: string;
  /** How anonymous requests to rate-limited exempt paths count an IPv6 client (VERDICT_IPV6_LIMIT_PREFIX). */
  readonly ipv6LimitPrefix?: number;
}

/** The running ext_authz service. */
export interface ExtAuthzService {
  /** `envoy.service.auth.v3.Authorization` for the gRPC server, with the hot-path codec of wire.ts. */
  readonly grpcService: GrpcService;
  /** The rules in force (reloaded from the file when one is configured). */
  readonly rules: RulesSource;
  /** Stops watching the rules file. */
  close(): void;
}

/**
 * Loads the rules (rejecting with a RulesError naming the file and entry when the configured file
 * is invalid, so that the server does not start on bad rules) and builds the service.
 */
export async function createExtAuthzService(options: ExtAuthzServiceOptions): Promise<ExtAuthzService> {
  const { decider, settings, metrics } = options;
  const logger = options.logger.child({ component: "ext_authz" });
  const holder = settings.rulesPath
    ? await createRulesHolder({
        path: settings.rulesPath,
        pollIntervalMs: settings.reloadIntervalMs,
        onReload(result) {
          if (!result.ok) {
            metrics.extAuthzRulesReloads.labels("failure").inc();
            logger.error("ext_authz rules file rejected; keeping the last good rules", { path: settings.rulesPath, error: result.error });
          } else if (result.changed) {
            metrics.extAuthzRulesReloads.labels("success").inc();
            logger.info("ext_authz rules reloaded", { path: settings.rulesPath, rules: holder?.current().ruleCount });
          }
        },
      })
    : undefined;
  const builtIn = holder === undefined ? builtInRules(options.sessionCookie) : undefined;
  const rules: RulesSource = holder ?? { current: () => builtIn! };
  logger.info("ext_authz rules loaded", { path: settings.rulesPath || "(built-in)", rules: rules.current().ruleCount, unmatched: rules.current().unmatched });

  const timer = metrics.checkDuration.labels("ext_authz");
  const observe = (outcome: ExtAuthzOutcome): void => {
    metrics.countDecision("ext_authz", outcome.allowed, outcome.reason);
    timer.observe(outcome.durationMs / 1000);
    options.audit?.record("ext_authz", outcome, outcome.action, outcome.tenant, outcome.decisionId);
    if (outcome.error !== undefined) {
      logger.error("ext_authz failed closed", { decisionId: outcome.decisionId, action: outcome.action, tenant: outcome.tenant, error: outcome.error });
    } else if (outcome.configProblem !== undefined) {
      logger.warn("ext_authz denied a request: Envoy's route configuration is invalid", { decisionId: outcome.decisionId, problem: outcome.configProblem });
    }
  };
  // Decision ids in the same form as DecisionService's: a per-process prefix and a counter.
  const check = createExtAuthzHandler({
    decider,
    rules,
    timeoutMs: settings.timeoutMs,
    ambiguousPaths: settings.ambiguousPaths,
    ipv6LimitPrefix: options.ipv6LimitPrefix,
    onOutcome: observe,
    newDecisionId: createDecisionIds(),
  });

  return {
    grpcService: authorizationService(check, rules),
    rules,
    close() {
      holder?.close();
    },
  };
}

/**
 * Mounts the handler at /envoy.service.auth.v3.Authorization/Check with the codec of wire.ts. Each
 * request is decoded for the rules current when it arrives (only the headers those rules read
 * become strings) and judged by the same rules, even if a reload swaps them meanwhile.
 */
function authorizationService(check: ExtAuthzHandler, rules: RulesSource): GrpcService {
  const selections = new WeakMap<CompiledRules, HeaderSelection>();
  const selectionFor = (current: CompiledRules): HeaderSelection => {
    let selection = selections.get(current);
    if (selection === undefined) {
      selection = selectHeaders(headerNamesRead(current), current.rateLimits.count > 0);
      selections.set(current, selection);
    }
    return selection;
  };
  // A server only needs the request decoder and the response encoder; decoding happens in the handler.
  const definition = {
    check: {
      path: "/envoy.service.auth.v3.Authorization/Check",
      requestStream: false,
      responseStream: false,
      requestDeserialize: (bytes: Buffer) => bytes,
      responseSerialize: (response: CheckResponse) => {
        const bytes = encodeCheckResponse(response);
        return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      },
    },
  } as unknown as ServiceDefinition;
  const implementation = {
    check(call: ServerUnaryCall<Buffer, CheckResponse>, callback: sendUnaryData<CheckResponse>) {
      const current = rules.current();
      let request: CheckRequestView;
      try {
        request = decodeCheckRequest(call.request, selectionFor(current));
      } catch (error) {
        callback(toGrpcError(malformedRequest("envoy.service.auth.v3.CheckRequest", error)));
        return;
      }
      let answer: CheckResponse | Promise<CheckResponse>;
      try {
        answer = check(request, current);
      } catch (error) {
        callback(error as Error);
        return;
      }
      if (answer instanceof Promise) answer.then((response) => callback(null, response), (error: unknown) => callback(error as Error));
      else callback(null, answer);
    },
  };
  return { definition, implementation };
}
