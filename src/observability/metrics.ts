/**
 * Every Prometheus metric Verdict exports, defined in this one file on a registry per process
 * (tests create several servers in one process, each with its own).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { ReasonCode } from "../core/decision.js";
import type { RateScope, RateWindowName } from "../core/rate-limit.js";
import { HotCounter, type HotCounterChild, HotHistogram } from "./hot-metrics.js";

/** Which server answered a call. */
type Transport = "grpc" | "connect";

/** Counts one method's calls on one transport by result code ("ok" or an error code). */
type MethodCounter = (code: string) => void;

/** Numbers the metrics read at scrape time. */
export interface MetricSources {
  policyVersion(): number;
  committedVersion(): number;
  cacheSizes(): Record<string, number>;
  busConnected(): boolean;
  ready(): boolean;
}

/** The metrics and the helpers the hot path uses to update them cheaply. */
export interface Metrics {
  readonly registry: Registry;
  /** Counts one decision; label children are made once per reason and reused. */
  countDecision(rpc: "check" | "check_batch" | "ext_authz", allowed: boolean, reason: ReasonCode): void;
  /** Counts one rate-limited decision ("limited") or shadow hit ("shadow") by the scope and window of the bound. */
  countRateLimit(kind: "limited" | "shadow", scope: RateScope, window: RateWindowName): void;
  /** Observes one Check's latency in seconds. */
  readonly checkDuration: HotHistogram;
  readonly keyUseDropped: Counter;
  readonly auditDropped: Counter;
  readonly keyUseFlushFailures: Counter;
  readonly changesApplied: Counter<"kind">;
  readonly catchUps: Counter<"trigger">;
  /** Time one catch-up run takes: read the change log, reload the changed rows, apply them. */
  readonly catchUpDuration: Histogram;
  readonly fullReloads: Counter;
  readonly applyFailures: Counter;
  readonly busMessages: Counter;
  readonly busResubscriptions: Counter;
  readonly pollFallbacks: Counter;
  readonly staleAnswers: Counter;
  /** Credentials whose rate-limit counts were forgotten to stay within VERDICT_RATE_LIMIT_MAX_TRACKED. */
  readonly rateLimitEvictions: Counter;
  /** Time one exchange of rate-limit counts with Redis takes, by outcome. */
  readonly rateLimitSyncDuration: Histogram<"outcome">;
  readonly rateLimitSyncFailures: Counter;
  readonly rateLimitSyncBadReplies: Counter;
  /** Seconds spent unable to reach Redis for rate-limit counts (fail open or closed). */
  readonly rateLimitDegradedSeconds: Counter;
  /** Failed-login counts Redis did not answer (counted on the replica, or refused when failing closed). */
  readonly loginAttemptCounterFailures: Counter;
  /** Failed-login counters found in Redis holding no count, and reset. */
  readonly loginAttemptCounterResets: Counter;
  readonly adminRequests: Counter<"method" | "code" | "transport">;
  /**
   * The counter of one Admin or Auth method on one transport (verdict_admin_requests_total),
   * made once when the service is mounted.
   */
  adminRequestCounter(method: string, transport: Transport): MethodCounter;
  /**
   * The counter of one DecisionService method on one transport (verdict_decision_requests_total):
   * made once, a plain increment per successful call.
   */
  decisionRequestCounter(method: string, transport: Transport): MethodCounter;
  readonly loginAttempts: Counter<"outcome">;
  /**
   * Store lookups of presented session secrets (token-lookups.ts): use "refresh", "logout" or
   * "sign_in_callback"; outcome "success", "failure" (counted against the client address) or
   * "rate_limited" (refused before the lookup).
   */
  readonly tokenAttempts: Counter<"use" | "outcome">;
  /** Sign-ins through identity providers: provider id (from the configuration) and outcome code. */
  readonly oauthSignIns: Counter<"provider" | "outcome">;
  readonly oauthPendingDropped: Counter;
  /** The browser session's cookie routes: route "refresh" or "logout", outcome "refreshed", "signed_out" or the refusal's code. */
  readonly sessionCookieRequests: Counter<"route" | "outcome">;
  /** Connections to the gRPC port closed at once because VERDICT_GRPC_MAX_CONNECTIONS were open. */
  readonly grpcConnectionsRefused: Counter;
  /** gRPC calls ended because their request did not arrive within VERDICT_GRPC_REQUEST_TIMEOUT_MS. */
  readonly grpcRequestTimeouts: Counter;
  /** Reloads of the ext_authz rules file after a change: outcome "success" or "failure" (last good rules kept). */
  readonly extAuthzRulesReloads: Counter<"outcome">;
  setSources(sources: MetricSources): void;
}

/** Creates the registry and every metric. */
export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  let sources: MetricSources | undefined;

  const decisions = new HotCounter(registry, "verdict_decisions_total", "Decisions by RPC, outcome and reason code.", ["rpc", "outcome", "reason"]);
  const children = new Map<string, Map<ReasonCode, HotCounterChild>>();
  const rateLimited = new HotCounter(registry, "verdict_rate_limited_total", "Decisions denied RATE_LIMITED, by the scope and window of the limit that bit.", ["scope", "window"]);
  const shadowHits = new HotCounter(
    registry,
    "verdict_rate_limit_shadow_hits_total",
    "Decisions a shadow rate limit would have denied (allowed), by its scope and window.",
    ["scope", "window"],
  );
  const rateChildren = new Map<string, HotCounterChild>();
  const checkDuration = new HotHistogram(
    registry,
    "verdict_check_duration_seconds",
    "Time to decide one Check or one CheckBatch (rpc label) inside the server (excluding transport).",
    ["rpc"],
    [0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.025, 0.1],
  );
  const decisionRequests = new HotCounter(
    registry,
    "verdict_decision_requests_total",
    "DecisionService calls (Check, CheckBatch) by method, transport (grpc: the gRPC port; connect: Connect, gRPC-web or gRPC on the HTTP port) and result code.",
    ["method", "transport", "code"],
  );
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Counter<L>({ name, help, labelNames, registers: [registry] });

  new Gauge({
    name: "verdict_policy_version",
    help: "The policy version this replica has applied (with several workers: the lowest of theirs).",
    registers: [registry],
    aggregator: "min",
    collect() {
      if (sources) this.set(sources.policyVersion());
    },
  });
  new Gauge({
    name: "verdict_policy_version_lag",
    help: "Versions between the newest known committed version and the applied one (with several workers: the largest).",
    registers: [registry],
    aggregator: "max",
    collect() {
      if (sources) this.set(Math.max(0, sources.committedVersion() - sources.policyVersion()));
    },
  });
  new Gauge({
    name: "verdict_cache_entries",
    help: "Entries held in memory, by kind (each worker holds them all: the largest worker's).",
    labelNames: ["kind"] as const,
    registers: [registry],
    aggregator: "max",
    collect() {
      if (!sources) return;
      for (const [kind, n] of Object.entries(sources.cacheSizes())) this.labels(kind).set(n);
    },
  });
  new Gauge({
    name: "verdict_bus_connected",
    help: "1 while the invalidation bus is connected (with several workers: on every worker).",
    registers: [registry],
    aggregator: "min",
    collect() {
      if (sources) this.set(sources.busConnected() ? 1 : 0);
    },
  });
  new Gauge({
    name: "verdict_ready",
    help: "1 when this replica has loaded the policy and serves Check (with several workers: every worker).",
    registers: [registry],
    aggregator: "min",
    collect() {
      if (sources) this.set(sources.ready() ? 1 : 0);
    },
  });

  const adminRequests = counter(
    "verdict_admin_requests_total",
    "Admin and Auth RPCs by method, result code and transport (grpc: the gRPC port; connect: the HTTP port).",
    ["method", "code", "transport"],
  );

  return {
    registry,
    checkDuration,
    countRateLimit(kind, scope, window) {
      const key = `${kind}:${scope}:${window}`;
      let child = rateChildren.get(key);
      if (!child) rateChildren.set(key, (child = (kind === "limited" ? rateLimited : shadowHits).labels(scope, window)));
      child.inc();
    },
    countDecision(rpc, allowed, reason) {
      let byReason = children.get(rpc);
      if (!byReason) children.set(rpc, (byReason = new Map()));
      let child = byReason.get(reason);
      if (!child) {
        child = decisions.labels(rpc, allowed ? "allow" : "deny", reason);
        byReason.set(reason, child);
      }
      child.inc();
    },
    grpcConnectionsRefused: counter("verdict_grpc_connections_refused_total", "Connections to the gRPC port closed at once because the connection limit was reached."),
    grpcRequestTimeouts: counter("verdict_grpc_request_timeouts_total", "gRPC calls answered DEADLINE_EXCEEDED and reset because their request did not arrive in time."),
    auditDropped: counter("verdict_audit_dropped_total", "Decision audit records dropped because the pending batch was full."),
    keyUseDropped: counter("verdict_key_use_dropped_total", "API key last-use records dropped because the pending batch was full."),
    keyUseFlushFailures: counter("verdict_key_use_flush_failures_total", "Batches of API key last-use records that failed to write."),
    changesApplied: counter("verdict_changes_applied_total", "Changed entities applied from the change log, by kind.", ["kind"]),
    catchUps: counter("verdict_catch_ups_total", "Catch-ups from the change log, by what triggered them.", ["trigger"]),
    catchUpDuration: new Histogram({
      name: "verdict_catch_up_duration_seconds",
      help: "Time one catch-up run takes (change log read, changed rows reloaded and applied; or a full reload).",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10, 60],
      registers: [registry],
    }),
    fullReloads: counter("verdict_full_reloads_total", "Full snapshot reloads (start-up, or a change log trimmed past this replica)."),
    applyFailures: counter("verdict_apply_failures_total", "Catch-ups that failed (the last good policy keeps serving)."),
    busMessages: counter("verdict_bus_messages_received_total", "Invalidation messages received."),
    busResubscriptions: counter("verdict_bus_resubscriptions_total", "Times the bus reconnected and resubscribed."),
    pollFallbacks: counter("verdict_poll_fallbacks_total", "Polls that found a newer version the bus had not announced."),
    staleAnswers: counter("verdict_stale_answers_total", "Checks whose min_version could not be reached in time."),
    rateLimitSyncDuration: new Histogram({
      name: "verdict_rate_limit_sync_duration_seconds",
      help: "Time one exchange of rate-limit counts with Redis takes, by outcome (ok, failed).",
      labelNames: ["outcome"] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    rateLimitSyncFailures: counter("verdict_rate_limit_sync_failures_total", "Exchanges of rate-limit counts with Redis that failed."),
    rateLimitSyncBadReplies: counter(
      "verdict_rate_limit_sync_bad_replies_total",
      "Values in Redis's answers to rate-limit exchanges that were not counts (a key of another type, or holding other data), skipped.",
    ),
    rateLimitDegradedSeconds: counter(
      "verdict_rate_limit_degraded_seconds_total",
      "Seconds this replica could not reach Redis for rate-limit counts (limits per replica when failing open, RATE_LIMITED when failing closed).",
    ),
    loginAttemptCounterFailures: counter(
      "verdict_login_attempt_counter_failures_total",
      "Failed-login and sign-in-start counts Redis did not answer (counted on this replica when VERDICT_RATE_LIMIT_FAIL_OPEN, else the attempt is refused).",
    ),
    loginAttemptCounterResets: counter(
      "verdict_login_attempt_counter_resets_total",
      "Failed-login and sign-in-start counters found in Redis holding no count (another type, or not a whole number such as inf), reset so that they lock nobody out.",
    ),
    rateLimitEvictions: counter("verdict_rate_limit_evictions_total", "Credentials whose rate-limit counts were forgotten to stay within VERDICT_RATE_LIMIT_MAX_TRACKED."),
    adminRequests,
    adminRequestCounter(method, transport) {
      const ok = adminRequests.labels(method, "ok", transport);
      return (code) => (code === "ok" ? ok.inc() : adminRequests.labels(method, code, transport).inc());
    },
    decisionRequestCounter(method, transport) {
      const ok = decisionRequests.labels(method, transport, "ok");
      return (code) => (code === "ok" ? ok.inc() : decisionRequests.labels(method, transport, code).inc());
    },
    loginAttempts: counter("verdict_login_attempts_total", "Login attempts by outcome.", ["outcome"]),
    tokenAttempts: counter(
      "verdict_token_attempts_total",
      "Refresh tokens, sessions named at sign-out and sign-in states looked up in the store, by use and outcome (rate_limited: refused before the lookup, the client address being past its budget of failures).",
      ["use", "outcome"],
    ),
    oauthSignIns: counter("verdict_oauth_sign_ins_total", "Sign-ins through identity providers by provider and outcome.", ["provider", "outcome"]),
    oauthPendingDropped: counter(
      "verdict_oauth_pending_dropped_total",
      "Started sign-ins dropped before their callback because VERDICT_OAUTH_MAX_PENDING were pending (the oldest go first).",
    ),
    sessionCookieRequests: counter(
      "verdict_session_cookie_requests_total",
      "Requests to the browser session's cookie routes (POST /oauth2/refresh and /oauth2/logout) by route and outcome.",
      ["route", "outcome"],
    ),
    extAuthzRulesReloads: counter(
      "verdict_ext_authz_rules_reloads_total",
      "Reloads of the ext_authz rules file after a change, by outcome (failure keeps the last good rules).",
      ["outcome"],
    ),
    setSources(s) {
      sources = s;
    },
  };
}

/**
 * Adds verdict_worker_info{worker, pid} = 1 to a worker's registry, so that the summed /metrics of
 * VERDICT_WORKERS > 1 lists every serving worker.
 */
export function registerWorkerInfo(registry: Registry, worker: number, pid: number): void {
  new Gauge({
    name: "verdict_worker_info",
    help: "1 per worker process serving (VERDICT_WORKERS > 1), by worker number and process id.",
    labelNames: ["worker", "pid"] as const,
    registers: [registry],
  })
    .labels(String(worker), String(pid))
    .set(1);
}
