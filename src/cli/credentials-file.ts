/**
 * The CLI's stored session: what `verdict login` saves in the user's config directory
 * ($XDG_CONFIG_HOME/verdict, else ~/.config/verdict), readable by the user only (0600 in a 0700
 * directory), written atomically.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
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

/** Reads the stored session; undefined when there is none. A damaged file is an error naming it. */
export function readSession(env: NodeJS.ProcessEnv): StoredSession | undefined {
  const path = credentialsPath(env);
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
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = credentialsPath(env);
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(session, null, 2)}\n`, { mode: 0o600 });
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
