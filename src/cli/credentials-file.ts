/**
 * The CLI's stored session: what `verdict login` saves in the user's config directory
 * ($XDG_CONFIG_HOME/verdict, else ~/.config/verdict), readable by the user only (0600 in a 0700
 * directory), written atomically. A directory or file found with wider permissions is tightened
 * before the session is written or read; one that belongs to another user is refused (as ssh
 * refuses its files), since that user could read the tokens or point the CLI at another server.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";

const StoredSessionSchema = v.object({
  url: v.string(),
  username: v.string(),
  tenant: v.string(),
  accessToken: v.string(),
  refreshToken: v.string(),
  /** When the access token expires, ms since the epoch. */
  accessExpiresAtMs: v.number(),
});

/** A session saved by `verdict login`. */
export type StoredSession = v.InferOutput<typeof StoredSessionSchema>;

/** The directory holding the CLI's files for this environment. */
export function configDir(env: NodeJS.ProcessEnv): string {
  const xdg = env.XDG_CONFIG_HOME;
  return join(xdg && xdg.startsWith("/") ? xdg : join(env.HOME || homedir(), ".config"), "verdict");
}

/** The path of the stored session. */
export function credentialsPath(env: NodeJS.ProcessEnv): string {
  return join(configDir(env), "credentials.json");
}

/**
 * Makes an existing directory or file of the CLI's private to this user (`mode`, when group or
 * others had any access); throws naming it when it belongs to another user, or when `directory`
 * and it is none. Nothing to do where modes and owners are not Unix ones.
 */
function keepPrivate(path: string, mode: number, directory: boolean): void {
  if (process.platform === "win32") return;
  let stats;
  try {
    stats = statSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  if (directory && !stats.isDirectory()) throw new Error(`${path} is not a directory; the CLI keeps its session there: move it away or set XDG_CONFIG_HOME`);
  const uid = process.getuid?.();
  if (uid !== undefined && stats.uid !== uid) {
    throw new Error(`${path} belongs to another user (uid ${stats.uid}), who could read or replace your session: remove it, or set XDG_CONFIG_HOME to a directory of yours`);
  }
  if ((stats.mode & 0o077) !== 0) chmodSync(path, mode);
}

/** Reads the stored session; undefined when there is none. A damaged file is an error naming it. */
export function readSession(env: NodeJS.ProcessEnv): StoredSession | undefined {
  const path = credentialsPath(env);
  keepPrivate(configDir(env), 0o700, true);
  keepPrivate(path, 0o600, false);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${path} is not valid JSON; run 'verdict logout' and log in again`);
  }
  const result = v.safeParse(StoredSessionSchema, parsed);
  if (!result.success) throw new Error(`${path} is not a Verdict session; run 'verdict logout' and log in again`);
  return result.output;
}

/** Saves the session, readable and writable by the user only. */
export function writeSession(env: NodeJS.ProcessEnv, session: StoredSession): string {
  const dir = configDir(env);
  keepPrivate(dir, 0o700, true);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = credentialsPath(env);
  const temporary = `${path}.${process.pid}.tmp`;
  // A new file (never one left behind, which keeps its own mode until chmod) holds the tokens.
  rmSync(temporary, { force: true });
  writeFileSync(temporary, `${JSON.stringify(session, null, 2)}\n`, { mode: 0o600, flag: "wx" });
  chmodSync(temporary, 0o600);
  renameSync(temporary, path);
  return path;
}

/** Removes the stored session; true if there was one. */
export function removeSession(env: NodeJS.ProcessEnv): boolean {
  const path = credentialsPath(env);
  try {
    rmSync(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}
