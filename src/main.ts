/**
 * Verdict's entry point: read the configuration, start one replica, drain on SIGTERM / SIGINT.
 * With VERDICT_WORKERS > 1 this process becomes the primary that forks the workers, and each worker
 * runs this file again as one replica sharing the ports. With --print-config: print the effective
 * configuration (secrets masked) and exit.
 */
import cluster from "node:cluster";
import { type Config, ConfigError, loadConfig } from "./config/config.js";
import { usableCpus } from "./cluster/cpu-count.js";
import { runPrimary } from "./cluster/primary.js";
import { effectiveConfig, formatEffectiveConfig } from "./config/print-config.js";
import { createLogger } from "./observability/logger.js";
import { applyV8Flags, workerExecArgv } from "./runtime/v8-flags.js";

/** The workers to run: VERDICT_WORKERS, with `auto` the usable CPUs (1 on the embedded database). */
function workerCount(config: Config, cpus: number): number {
  if (config.workers !== "auto") return config.workers;
  return config.databaseUrl ? cpus : 1;
}

async function main(): Promise<void> {
  let config;
  try {
    if (process.argv.includes("--print-config")) {
      process.stdout.write(formatEffectiveConfig(effectiveConfig(process.env)));
      return;
    }
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`verdict: configuration error: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  applyV8Flags({ embeddedDatabase: config.databaseUrl === "", heapGrowingPercent: config.heapGrowingPercent });
  const logger = createLogger(config.logLevel, { service: "verdict" });
  if (cluster.isPrimary) {
    const cpus = usableCpus();
    const workers = workerCount(config, cpus);
    if (workers > 1) {
      runPrimary({
        workers,
        workerExecArgv: workerExecArgv(config.workerGc, workers, cpus),
        shutdownGraceMs: config.shutdownGraceMs,
        relayBus: !config.redisUrl,
        rateLimitSyncMs: config.rateLimit.syncIntervalMs,
        logger: logger.child({ component: "primary" }),
      });
      return;
    }
    if (config.workers === "auto" && !config.databaseUrl) logger.info("VERDICT_WORKERS=auto runs one worker on the embedded database (it belongs to one process)");
  }
  // Loaded only by a process that serves: a primary of workers holds none of the replica's modules.
  const [{ startVerdict }, { setUpWorker }] = await Promise.all([import("./app.js"), import("./cluster/worker.js")]);
  const worker = cluster.isWorker ? setUpWorker(config, logger) : undefined;
  const workerLogger = worker ? logger.child({ worker: worker.slot }) : logger;
  const verdict = await startVerdict(config, {
    ...worker?.startOptions,
    logger: workerLogger,
    onGeneratedRootPassword(username, password) {
      // Shown once, on the terminal only: it is never logged or stored in clear.
      process.stderr.write(
        `\n  Verdict generated a password for the root user (shown once, store it now):\n\n    username: ${username}\n    password: ${password}\n\n  Set VERDICT_ROOT_PASSWORD to choose your own.\n\n`,
      );
    },
  });
  worker?.started(verdict.registry);
  process.stderr.write(`verdict: gRPC on ${config.grpcAddr.host}:${verdict.grpcPort}, HTTP on ${config.httpAddr.host}:${verdict.httpPort}\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    workerLogger.info("draining", { signal });
    verdict.close().then(
      () => process.exit(0),
      (error) => {
        workerLogger.error("shutdown failed", { error });
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  // A worker whose primary is gone drains and exits (nothing would restart or stop it otherwise).
  if (worker) process.on("disconnect", () => stop("primary gone"));
}

main().catch((error) => {
  process.stderr.write(`verdict: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
