/**
 * The CLI's stored session stays readable by its user only: a config directory or credentials
 * file with wider permissions is tightened (0700, 0600) when it is written or read, and one that
 * belongs to another user, or a directory that is no directory, is refused with a message naming it.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type StoredSession, configDir, credentialsPath, readSession, writeSession } from "../../src/cli/credentials-file.js";

const SESSION: StoredSession = { url: "http://localhost:8080", username: "alice", tenant: "", accessToken: "a.b.c", refreshToken: "r", accessExpiresAtMs: 1 };
const mode = (path: string) => statSync(path).mode & 0o777;
const isRoot = process.getuid?.() === 0;

describe("the CLI's credentials file", () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  beforeEach(() => {
    home = mkdtempSync(join(tmpdir(), "verdict-cli-"));
    env = { XDG_CONFIG_HOME: home };
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  it("creates the directory 0700 and the file 0600", () => {
    writeSession(env, SESSION);
    expect([mode(configDir(env)), mode(credentialsPath(env))]).toEqual([0o700, 0o600]);
    expect(readSession(env)).toEqual(SESSION);
  });

  it.each(["755", "775", "777", "701"])("tightens an existing directory of mode %s when writing", (wide) => {
    mkdirSync(configDir(env), { mode: 0o700 });
    chmodSync(configDir(env), parseInt(wide, 8));
    writeSession(env, SESSION);
    expect([mode(configDir(env)), mode(credentialsPath(env))]).toEqual([0o700, 0o600]);
  });

  it.each(["644", "640", "666", "604"])("tightens a credentials file of mode %s, and its directory, when reading", (wide) => {
    writeSession(env, SESSION);
    chmodSync(credentialsPath(env), parseInt(wide, 8));
    chmodSync(configDir(env), 0o755);
    expect(readSession(env)).toEqual(SESSION);
    expect([mode(configDir(env)), mode(credentialsPath(env))]).toEqual([0o700, 0o600]);
  });

  it("never writes the secrets into a file others can read, even over a stale temporary file", () => {
    mkdirSync(configDir(env), { mode: 0o700 });
    const stale = `${credentialsPath(env)}.${process.pid}.tmp`;
    writeFileSync(stale, "old", { mode: 0o666 });
    chmodSync(stale, 0o666);
    writeSession(env, SESSION);
    expect(mode(credentialsPath(env))).toBe(0o600);
    expect(readdirSync(configDir(env))).toEqual(["credentials.json"]);
  });

  it("refuses a config path that is not a directory", () => {
    writeFileSync(configDir(env), "not a directory");
    expect(() => writeSession(env, SESSION)).toThrow(new RegExp(`${configDir(env)} is not a directory`));
  });

  it.skipIf(!isRoot)("refuses a directory or file that belongs to another user, naming it", () => {
    mkdirSync(configDir(env), { mode: 0o700 });
    chownSync(configDir(env), 65534, 65534);
    expect(() => writeSession(env, SESSION)).toThrow(/belongs to another user/);
    expect(() => readSession(env)).toThrow(new RegExp(`${configDir(env)} belongs to another user`));
    chownSync(configDir(env), 0, 0);
    writeSession(env, SESSION);
    chownSync(credentialsPath(env), 65534, 65534);
    expect(() => readSession(env)).toThrow(new RegExp(`${credentialsPath(env)} belongs to another user`));
  });
});
