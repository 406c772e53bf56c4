/**
 * The embedded database's directory holds password hashes, API key hashes and signing keys, so it
 * is its owner's only (0700), as Postgres keeps its own data directory. A new one is created so; an
 * existing one open to group or others is tightened, and that is reported; one that belongs to
 * another user, or a path that is no directory, is refused (as ssh refuses such files), since that
 * user could read the hashes or replace the policy.
 */
import { chmodSync, mkdirSync, statSync } from "node:fs";
import { dirname } from "node:path";

const PRIVATE = 0o700;

/**
 * Makes `dir` ready for the embedded database: creates it 0700 (its missing parents with the usual
 * mode), or tightens it to 0700 when group or others had any access, calling `onTightened` with a
 * message naming it. Throws, naming it, when it is no directory or belongs to another user. Does
 * nothing about modes and owners where they are not Unix ones.
 */
export function prepareDataDir(dir: string, onTightened?: (message: string) => void): void {
  mkdirSync(dirname(dir), { recursive: true });
  try {
    mkdirSync(dir, { mode: PRIVATE });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  const stats = statSync(dir);
  if (!stats.isDirectory()) throw new Error(`VERDICT_DATA_DIR ${dir} is not a directory: the embedded database needs one (Verdict creates it when missing)`);
  if (process.platform === "win32") return;
  const uid = process.getuid?.();
  if (uid !== undefined && stats.uid !== uid) {
    throw new Error(
      `the embedded database directory ${dir} belongs to another user (uid ${stats.uid}; Verdict runs as uid ${uid}), who could read its password and key hashes or change the policy: ` +
        `give it to uid ${uid} (chown), or set VERDICT_DATA_DIR to a path of this user's (a missing directory is created)`,
    );
  }
  if ((stats.mode & 0o077) === 0) return;
  chmodSync(dir, PRIVATE);
  const was = (stats.mode & 0o7777).toString(8).padStart(4, "0");
  onTightened?.(`the embedded database directory ${dir} was open to other users (mode ${was}); it holds password and key hashes, so its mode is now 0700`);
}
