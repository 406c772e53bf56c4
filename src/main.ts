/**
 * Verdict's entry point: read the configuration, start one replica, drain on SIGTERM / SIGINT.
 * With --print-config: print the effective configuration (secrets masked) and exit.
 */
import { setFlagsFromString } from "node:v8";
import { ConfigError, loadConfig } from "./config/config.js";
import { effectiveConfig, formatEffectiveConfig } from "./config/print-config.js";
import { createLogger } from "./observability/logger.js";
import { startVerdict } from "./app.js";

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
  // The embedded database is Postgres in WebAssembly: compiled by Liftoff only (no TurboFan tier-up)
  // it holds about 45 MB less and starts about twice as fast, with no measurable cost on its queries
  // (bench/RESULTS.md). Set before PGlite compiles its module; no other WebAssembly runs here.
  if (config.databaseUrl === "") setFlagsFromString("--liftoff-only");
  const logger = createLogger(config.logLevel, { service: "verdict" });
  const verdict = await startVerdict(config, {
    logger,
    onGeneratedRootPassword(username, password) {
      // Shown once, on the terminal only: it is never logged or stored in clear.
      process.stderr.write(
        `\n  Verdict generated a password for the root user (shown once, store it now):\n\n    username: ${username}\n    password: ${password}\n\n  Set VERDICT_ROOT_PASSWORD to choose your own.\n\n`,
      );
    },
  });
  process.stderr.write(`verdict: gRPC on ${config.grpcAddr.host}:${verdict.grpcPort}, HTTP on ${config.httpAddr.host}:${verdict.httpPort}\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info("draining", { signal });
    verdict.close().then(
      () => process.exit(0),
      (error) => {
        logger.error("shutdown failed", { error });
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main().catch((error) => {
  process.stderr.write(`verdict: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
