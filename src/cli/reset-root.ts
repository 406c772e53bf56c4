/**
 * `verdict reset-root`: the recovery path when root's password is lost. Run beside the database
 * with the server's environment (DATABASE_URL / VERDICT_DATABASE_SCHEMA, or VERDICT_DATA_DIR for
 * the embedded database, VERDICT_ROOT_USERNAME, the argon2 settings); it opens the store directly,
 * sets a new password (generated unless given), which revokes every session of root (the store's
 * setPassword does), and optionally enables root again. Running replicas follow through the change
 * log like after any admin change.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createPasswordHasher, passwordProblem } from "../authn/password.js";
import { ConfigError, loadConfig } from "../config/config.js";
import { openStore } from "../store/index.js";
import type { Actor } from "../store/store.js";
import { CliError, EXIT } from "./exit-codes.js";

/** What reset-root did. */
export interface ResetRootResult {
  readonly username: string;
  /** The new password (shown once by the caller). */
  readonly password: string;
  /** True when root was disabled and is now enabled. */
  readonly enabled: boolean;
  /** True when root stays disabled (it was, and --enable was not given). */
  readonly disabled: boolean;
  /** The policy version of the last change. */
  readonly version: number;
}

const ACTOR: Actor = { userId: "system:reset-root" };

/** Sets a new root password in the configured database. */
export async function resetRoot(
  env: NodeJS.ProcessEnv,
  options: { password?: string; enable: boolean; warn?: (message: string) => void },
): Promise<ResetRootResult> {
  let config;
  try {
    config = loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) throw new CliError(`configuration error: ${error.message}`, EXIT.usage);
    throw error;
  }
  const password = options.password ?? randomBytes(18).toString("base64url");
  const problem = passwordProblem(password);
  if (problem) throw new CliError(problem, EXIT.usage);
  if (!config.databaseUrl && !existsSync(join(config.dataDir, "PG_VERSION"))) {
    throw new CliError(`no embedded database in ${config.dataDir}: set VERDICT_DATA_DIR (or DATABASE_URL) as the server has it`, EXIT.usage);
  }
  const where = config.databaseUrl ? "the database at DATABASE_URL" : `the embedded database in ${config.dataDir}`;
  let store;
  try {
    store = await openStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, schema: config.databaseSchema || undefined, onDataDirTightened: options.warn });
  } catch (error) {
    throw new CliError((error as Error).message, EXIT.refused);
  }
  try {
    let root;
    try {
      root = await store.getUserByUsername(config.root.username);
    } catch (error) {
      throw new CliError(`cannot read users from ${where}: ${(error as Error).message} (has Verdict started on it once?)`, EXIT.unreachable);
    }
    if (!root) throw new CliError(`no user ${config.root.username} in ${where}; Verdict creates root at its first start (VERDICT_ROOT_USERNAME names it)`, EXIT.refused);
    if (!root.root) throw new CliError(`${config.root.username} is an ordinary user, not root (check VERDICT_ROOT_USERNAME)`, EXIT.refused);
    const hasher = createPasswordHasher(config.argon2, { maxConcurrent: 1, maxWaiting: 1 });
    let { version } = await store.setPassword(root.id, await hasher.hash(password), ACTOR);
    const enable = options.enable && root.disabled;
    if (enable) version = (await store.setUserDisabled(root.id, false, ACTOR)).version;
    return { username: root.username, password, enabled: enable, disabled: root.disabled && !enable, version };
  } finally {
    await store.close();
  }
}
