/**
 * Assembles one Verdict replica from a Config: store, bus, engine, services, servers. main.ts runs
 * it as a process; integration tests run it in-process.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { createLoginLimiter } from "./authn/login-limiter.js";
import { createTokenLimiter } from "./authn/token-limiter.js";
import { createPasswordHasher } from "./authn/password.js";
import { type MeteredBus, openBus } from "./bus/index.js";
import type { Config } from "./config/config.js";
import { Engine } from "./engine/engine.js";
import { RateLimiter, rateLimitApplier } from "./engine/rate-limiter.js";
import { type RateLimitSync, fleetSyncSettings } from "./bus/rate-limit-sync.js";
import { type AttemptCounter, type ClosableAttemptCounter, createMemoryAttemptCounter } from "./authn/attempt-counter.js";
import { bootstrapRoot, disableRootAfterSetup, type RootSettings } from "./engine/bootstrap.js";
import { createTokenAuthority } from "./engine/token-authority.js";
import { routeGrpcJsLogs } from "./observability/grpc-js-log.js";
import { type Logger, createLogger } from "./observability/logger.js";
import { createMetrics } from "./observability/metrics.js";
import type { Registry } from "prom-client";
import { createDecisionAudit } from "./observability/audit.js";
import { openStore } from "./store/index.js";
import type { Store } from "./store/store.js";
import { createAdminService } from "./api/admin-service.js";
import { createAuthService } from "./api/auth-service.js";
import { createClientBucket } from "./api/client-address.js";
import { createPasswordCheck } from "./api/password-check.js";
import { createDecisionService } from "./api/decision-service.js";
import { createExtAuthzService } from "./api/envoy/service.js";
import { trustedOrigins } from "./api/oauth/request-origin.js";
import { createOAuthRoutes } from "./api/oauth/routes.js";
import { createSignIn } from "./api/oauth/sign-in.js";
import { createSessionRefresh } from "./api/session-refresh.js";
import { createSessionTokens } from "./api/session-tokens.js";
import { createTokenLookups } from "./api/token-lookups.js";
import { HealthState, ServingStatus } from "./api/health.js";
import { type CountRequests, type WireCodec, toConnectService, toGrpcService } from "./api/rpc.js";
import { decodeCheckRequest, encodeCheckResponse } from "./api/check-codec.js";
import { startGrpcServer } from "./server/grpc-server.js";
import { type MetricsExposition, startHttpServer } from "./server/http-server.js";
import { AdminService } from "../gen/verdict/v1/admin_pb.js";
import { AuthService } from "../gen/verdict/v1/auth_pb.js";
import { DecisionService } from "../gen/verdict/v1/decision_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";

/** Of the shutdown grace, the share (at most SHUTDOWN_RESERVE_MAX_MS) kept for closing what is behind the servers. */
const SHUTDOWN_RESERVE_SHARE = 0.25;
const SHUTDOWN_RESERVE_MAX_MS = 1000;
/** Of the shutdown grace, the end (at most SHUTDOWN_EXIT_MAX_MS) left for the process to exit after close() returns. */
const SHUTDOWN_EXIT_SHARE = 0.05;
const SHUTDOWN_EXIT_MAX_MS = 100;

/** Whether `work` finishes within `ms` (a rejection passes through). */
function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, ms))));
  return Promise.race([work.then(() => true), late]).finally(() => clearTimeout(timer));
}

/** A running replica. */
export interface RunningVerdict {
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly engine: Engine;
  readonly store: Store;
  /** Resolves once the policy is loaded (it retries while the store is unreachable). */
  readonly loaded: Promise<void>;
  /** Every metric of this replica (a worker hands it to the primary for the aggregated /metrics). */
  readonly registry: Registry;
  /** Set when bootstrap generated a root password at this start (shown once). */
  readonly generatedRootPassword: () => string | undefined;
  /**
   * Drains and stops everything within config.shutdownGraceMs: calls in flight get the grace less a
   * reserve (a quarter, at most 1 s) and are then cut; the engine, bus and database close in the reserve,
   * and are left as they are when its last 5% (at most 100 ms, for the process to exit) begins.
   */
  close(): Promise<void>;
}

/** How a shared failed-login counter behaves when the other side does not answer. */
export interface SharedAttemptCounting {
  /** Where to count meanwhile (fail open); undefined refuses attempts (fail closed). */
  readonly fallback: AttemptCounter | undefined;
  /** Called on every call that was not answered. */
  readonly onFailure: (error: unknown) => void;
}

/** Options for tests and embedding. */
export interface StartOptions {
  readonly logger?: Logger;
  /** Postgres schema for the tables (tests isolate in their own); overrides config.databaseSchema. */
  readonly schema?: string;
  /** Called once with a generated root password. */
  readonly onGeneratedRootPassword?: (username: string, password: string) => void;
  /** The fetch used towards identity providers (tests wrap it); default globalThis.fetch. */
  readonly providerFetch?: typeof globalThis.fetch;
  /** The store to use instead of the one the configuration names; the replica closes it. */
  readonly store?: Store;
  /** The invalidation bus to use instead of the one the configuration names (a worker's cluster bus). */
  readonly bus?: MeteredBus;
  /**
   * The start-up duties that run once per start of a deployment (migrations, root bootstrap,
   * signing-key creation, retiring removed identity providers): `run` (default) runs them and then
   * calls `done`; otherwise the replica waits for `done` before it loads the policy.
   */
  readonly duties?: { readonly run: true; readonly done?: () => void } | { readonly run: false; readonly done: Promise<void> };
  /** What /metrics serves; default this replica's registry (a worker serves all workers' sum). */
  readonly metricsExposition?: MetricsExposition;
  /**
   * Start the servers only once the policy is loaded (a worker replacing one that died, while its
   * siblings serve: connections it would take meanwhile could only be refused or fail closed).
   */
  readonly listenAfterLoad?: boolean;
  /**
   * Where rate-limit counts are shared when no Redis is configured (a worker's exchange with its
   * siblings through the primary); with neither, each replica counts alone.
   */
  readonly rateLimitSync?: RateLimitSync;
  /**
   * Opens the failed-login counter shared with other processes when no Redis is configured (a
   * worker's, kept by its primary); with neither, each replica counts alone.
   */
  readonly loginAttempts?: (counting: SharedAttemptCounting) => ClosableAttemptCounter;
  /** Response metadata on every gRPC Health.Check answer (a worker's number and pid). */
  readonly healthMetadata?: Readonly<Record<string, string>>;
}

/** Starts a replica: servers come up at once (NOT_SERVING) and turn SERVING once the policy loads. */
export async function startVerdict(config: Config, options: StartOptions = {}): Promise<RunningVerdict> {
  const logger = options.logger ?? createLogger(config.logLevel, { service: "verdict" });
  routeGrpcJsLogs(logger);
  const metrics = createMetrics();
  const schema = options.schema ?? (config.databaseSchema || undefined);
  // Drivers are loaded when chosen: the embedded default loads neither pg nor ioredis, Postgres not PGlite.
  const onDataDirTightened = (message: string) => logger.warn(message, { dataDir: config.dataDir });
  const store: Store = options.store ?? (await openStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, schema, onDataDirTightened }));
  const bus = options.bus ?? (await openBus({ redisUrl: config.redisUrl, channel: config.redisChannel, logger: logger.child({ component: "bus" }) }));
  const passwords = createPasswordHasher(config.argon2, { maxConcurrent: config.argon2.maxConcurrent, maxWaiting: 256, maxWaitingPerSource: 16 });
  // With Redis every replica (every worker) shares counts there; without it, a worker shares them with its siblings.
  const rateLimitSync = config.redisUrl
    ? (await import("./bus/rate-limit-sync-redis.js")).createRedisRateLimitSync({
        ...fleetSyncSettings(config.rateLimit.syncIntervalMs),
        url: config.redisUrl,
        prefix: config.rateLimit.redisPrefix,
        replicaId: `${hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`,
      })
    : options.rateLimitSync;
  const rateLimiter = new RateLimiter({
    defaults: { perMinute: config.rateLimit.perMinute, perHour: config.rateLimit.perHour, burst: config.rateLimit.burst, shadow: false },
    maxTracked: config.rateLimit.maxTracked,
    onEvicted: () => metrics.rateLimitEvictions.inc(),
    fleet: rateLimitSync
      ? {
          sync: rateLimitSync,
          intervalMs: config.rateLimit.syncIntervalMs,
          graceMs: Math.max(1000, 20 * config.rateLimit.syncIntervalMs),
          failOpen: config.rateLimit.failOpen,
          logger: logger.child({ component: "rate-limits" }),
          onExchange: (seconds, ok) => {
            metrics.rateLimitSyncDuration.labels(ok ? "ok" : "failed").observe(seconds);
            if (!ok) metrics.rateLimitSyncFailures.inc();
          },
          onDegraded: (seconds) => metrics.rateLimitDegradedSeconds.inc(seconds),
          onBadReplies: (count) => metrics.rateLimitSyncBadReplies.inc(count),
        }
      : undefined,
  });
  const engine = new Engine({
    store,
    bus,
    metrics,
    logger,
    policy: { adminOverride: config.adminOverride, adminRole: config.adminRole },
    failOpen: config.failOpen,
    pollIntervalMs: config.pollIntervalMs,
    keyUse: config.keyUse,
    rateLimiter,
  });
  engine.onChanges("rate_limit", rateLimitApplier(store, rateLimiter));
  const tokens = createTokenAuthority({ store, engine, settings: config.tokens, logger });
  engine.setTokenAuthenticator(tokens);
  const health = new HealthState();
  metrics.setSources({
    policyVersion: () => engine.version,
    committedVersion: () => engine.committedVersion,
    cacheSizes: () => ({
      ...engine.current.sizes(),
      rate_limit_keys: rateLimiter.sizes().keys,
      rate_limit_users: rateLimiter.sizes().users,
      rate_limit_routes: rateLimiter.sizes().routes,
      token_claims: tokens.stats().cacheEntries,
      revoked_sessions: tokens.stats().revokedSessions,
    }),
    busConnected: () => bus.connected,
    ready: () => engine.ready,
  });

  const rootSettings: RootSettings = { ...config.root, adminRole: config.adminRole };
  const adminLogger = logger.child({ component: "admin" });
  const audit = config.audit.enabled
    ? createDecisionAudit({ ...config.audit, write: (lines) => process.stdout.write(lines), onDropped: () => metrics.auditDropped.inc() })
    : undefined;
  const decision = createDecisionService({ engine, metrics, requireCaller: config.checkRequireCaller, minVersionWaitMs: config.minVersionWaitMs, audit });
  // With Redis, failed logins are counted for the whole fleet (N replicas must not mean N times the
  // guesses); without it, a worker's are counted by its primary for all its siblings.
  const sharedCounting: SharedAttemptCounting = {
    fallback: config.rateLimit.failOpen ? createMemoryAttemptCounter() : undefined,
    onFailure: () => metrics.loginAttemptCounterFailures.inc(),
  };
  const loginAttempts = config.redisUrl
    ? (await import("./bus/attempt-counter-redis.js")).createRedisAttemptCounter({
        url: config.redisUrl,
        prefix: config.rateLimit.redisPrefix,
        timeoutMs: 250,
        ...sharedCounting,
        onBadValue: () => metrics.loginAttemptCounterResets.inc(),
        logger: logger.child({ component: "login-attempts" }),
      })
    : options.loginAttempts?.(sharedCounting);
  // Every per-address limit counts an IPv6 client by its prefix (one subscriber holds a whole /64).
  const clientBucket = createClientBucket(config.trustedProxies, config.ipv6LimitPrefix);
  const passwordCheck = createPasswordCheck({
    store,
    passwords,
    limiter: createLoginLimiter({
      maxFailures: config.tokens.loginMaxAttempts,
      maxFailuresPerAddress: config.tokens.loginMaxAttemptsPerAddress,
      windowMs: config.tokens.loginWindowMs,
      counter: loginAttempts,
    }),
    clientBucket,
  });
  const admin = createAdminService({
    store,
    engine,
    passwords,
    passwordCheck,
    logger: adminLogger,
    async afterBindingChange() {
      const version = await disableRootAfterSetup(store, rootSettings, adminLogger);
      if (version !== undefined) {
        await engine.commit(version);
      }
    },
  });
  const sessions = createSessionTokens(tokens, config.tokens.refreshTtlMs);
  // Made-up refresh tokens and sign-in states cost a store lookup each: an address may have only so
  // many fail per window, with the failed logins' numbers, counted where they are (Redis for the fleet).
  const lookups = createTokenLookups({
    limiter: createTokenLimiter({
      maxFailuresPerAddress: config.tokens.loginMaxAttemptsPerAddress,
      windowMs: config.tokens.loginWindowMs,
      counter: loginAttempts,
    }),
    metrics,
  });
  const refreshSession = createSessionRefresh({ store, engine, sessions, lookups, logger });
  const auth = createAuthService({
    store,
    engine,
    tokens,
    passwordCheck,
    metrics,
    logger,
    sessions,
    refreshSession,
    lookups,
    clientBucket,
  });
  const healthHandlers = health.handlers();
  const countAdmin: CountRequests = (method, transport) => metrics.adminRequestCounter(method, transport);
  const countDecisions: CountRequests = (method, transport) => metrics.decisionRequestCounter(method, transport);
  const signIn = createSignIn({ store, engine, sessions, logger });
  const oauth = createOAuthRoutes({
    settings: config.oauth,
    store,
    engine,
    tokens,
    signIn,
    refreshSession,
    trustedOrigins: trustedOrigins(config.oauth.publicUrl, config.cors),
    metrics,
    logger,
    // Counted with the failed logins: in Redis for the whole fleet when there is one.
    signInStarts: loginAttempts ?? createMemoryAttemptCounter(),
    clientBucket,
    lookups,
    fetch: options.providerFetch,
  });
  const cookieName = config.oauth.cookie.name;

  const duties = options.duties ?? { run: true };
  let generated: string | undefined;
  let stopping = false;
  const loaded = (async () => {
    for (let attempt = 1; !stopping; attempt++) {
      try {
        const versions: number[] = [];
        if (duties.run) {
          await store.migrate();
          const boot = await bootstrapRoot(store, rootSettings, passwords, logger);
          if (boot.generatedPassword) {
            generated = boot.generatedPassword;
            options.onGeneratedRootPassword?.(config.root.username, boot.generatedPassword);
          }
          versions.push(...boot.versions, ...(await tokens.ensureKeys()));
          versions.push(...(await signIn.retireRemovedProviders(config.oauth.providers.map((p) => p.id))));
        } else {
          await duties.done;
        }
        await engine.load();
        for (const v of versions) await engine.publish(v);
        if (duties.run) duties.done?.();
        void tokens.warm();
        health.setServing(true);
        logger.info("policy loaded; serving", { version: engine.version, store: store.driver, bus: bus.driver });
        return;
      } catch (error) {
        logger.warn("cannot load the policy yet; retrying (health stays NOT_SERVING)", { attempt, error });
        await new Promise((r) => setTimeout(r, Math.min(attempt * 500, 5000)));
      }
    }
  })();

  // A worker started beside serving siblings takes connections only once it can answer them.
  if (options.listenAfterLoad) await loaded;

  /** Closes what stands behind the servers, in order: engine, rate limiter, login counter, audit, bus, store. */
  const closeBehindServers = async () => {
    await engine.close();
    await rateLimiter.close();
    await loginAttempts?.close();
    await audit?.close();
    await bus.close();
    await store.close();
  };

  // What start opened before a failure here (a bad rules file, a port in use) is closed again:
  // the load loop stops and the engine, bus and database close, so a failed start leaks nothing.
  let extAuthz: Awaited<ReturnType<typeof createExtAuthzService>> | undefined;
  let grpc: Awaited<ReturnType<typeof startGrpcServer>> | undefined;
  let http: Awaited<ReturnType<typeof startHttpServer>>;
  try {
    extAuthz = await createExtAuthzService({
      decider: engine,
      settings: config.extAuthz,
      metrics,
      logger,
      audit,
      sessionCookie: cookieName,
      ipv6LimitPrefix: config.ipv6LimitPrefix,
    });
    grpc = await startGrpcServer({
      addr: config.grpcAddr,
      services: [
        toGrpcService(DecisionService, decision, logger, {
          codecs: { check: { deserialize: decodeCheckRequest, serialize: encodeCheckResponse } as unknown as WireCodec },
          count: countDecisions,
        }),
        toGrpcService(AdminService, admin, logger, { count: countAdmin }),
        toGrpcService(AuthService, auth, logger, { count: countAdmin }),
        extAuthz.grpcService,
      ],
      health,
      healthMetadata: options.healthMetadata,
      maxRequestBytes: config.maxRequestBytes,
      fastLane: config.grpcFastLane ? [`/${DecisionService.typeName}/Check`, `/${DecisionService.typeName}/CheckBatch`, extAuthz.grpcService.definition.check.path] : [],
      limits: config.grpcLimits,
      onConnectionRefused: () => metrics.grpcConnectionsRefused.inc(),
      onRequestTimeout: () => metrics.grpcRequestTimeouts.inc(),
      logger,
    });
    http = await startHttpServer({
      addr: config.httpAddr,
      services: [
        { service: DecisionService, implementation: toConnectService(DecisionService, decision, logger, { count: countDecisions, sessionCookie: cookieName }), count: countDecisions },
        { service: AdminService, implementation: toConnectService(AdminService, admin, logger, { count: countAdmin, sessionCookie: cookieName }), count: countAdmin },
        { service: AuthService, implementation: toConnectService(AuthService, auth, logger, { count: countAdmin, sessionCookie: cookieName }), count: countAdmin },
        { service: Health, implementation: toConnectService(Health, healthHandlers, logger) },
      ].map((s) => s as never),
      metrics: options.metricsExposition ?? metrics.registry,
      routes: {
        "/.well-known/jwks.json": (_req, res) => {
          res.writeHead(200, { "content-type": "application/json", "cache-control": "public, max-age=60" });
          res.end(JSON.stringify(tokens.jwks(Date.now())));
        },
      },
      handle: oauth.handle,
      ready: () => engine.ready && health.status === ServingStatus.SERVING,
      maxRequestBytes: config.maxRequestBytes,
      logger,
      cors: config.cors,
    });
  } catch (error) {
    stopping = true;
    extAuthz?.close();
    await grpc?.close(0);
    await loaded.catch(() => undefined);
    await closeBehindServers();
    throw error;
  }
  const ext = extAuthz;
  const grpcServer = grpc;

  logger.info("listening", { grpc: `${config.grpcAddr.host}:${grpcServer.port}`, http: `${config.httpAddr.host}:${http.port}`, store: store.driver, bus: bus.driver });

  return {
    grpcPort: grpcServer.port,
    httpPort: http.port,
    engine,
    store,
    registry: metrics.registry,
    loaded,
    generatedRootPassword: () => generated,
    async close() {
      const graceMs = config.shutdownGraceMs;
      const deadline = performance.now() + graceMs - Math.min(SHUTDOWN_EXIT_MAX_MS, graceMs * SHUTDOWN_EXIT_SHARE);
      stopping = true;
      health.drain();
      ext.close();
      // Calls in flight get the grace less a reserve in which the engine, bus and database close.
      const drainMs = graceMs - Math.min(SHUTDOWN_RESERVE_MAX_MS, Math.floor(graceMs * SHUTDOWN_RESERVE_SHARE));
      await Promise.all([grpcServer.close(drainMs), http.close(drainMs)]);
      const rest = closeBehindServers();
      if (!(await settlesWithin(rest, deadline - performance.now()))) {
        logger.warn("shutdown grace over before the engine, bus and database closed; leaving them", { graceMs });
      }
    },
  };
}
