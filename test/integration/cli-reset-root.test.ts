/**
 * `verdict reset-root` beside an embedded (PGlite) data directory, spawned as the real binary
 * while the server is stopped; and the start-up warning when VERDICT_ROOT_PASSWORD is set but
 * root already exists.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Code, ConnectError, createVerdictClient } from "verdict/client";
import { runCli } from "../helpers/cli.js";
import { CHEAP_TEST_ENV, ROOT_PASSWORD, startTestVerdict } from "../helpers/verdict.js";

let dataDir: string;
const IGNORED = "VERDICT_ROOT_PASSWORD is set but ignored";

beforeAll(() => {
  dataDir = mkdtempSync(join(tmpdir(), "verdict-reset-root-"));
}, 120_000);

afterAll(() => {
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const cheapArgon2 = {
  VERDICT_ARGON2_MEMORY_KIB: CHEAP_TEST_ENV.VERDICT_ARGON2_MEMORY_KIB,
  VERDICT_ARGON2_TIME_COST: CHEAP_TEST_ENV.VERDICT_ARGON2_TIME_COST,
  VERDICT_ARGON2_PARALLELISM: CHEAP_TEST_ENV.VERDICT_ARGON2_PARALLELISM,
};

async function login(httpBase: string, password: string): Promise<string> {
  const client = createVerdictClient({ url: httpBase });
  try {
    await client.auth.login({ username: "root", password });
    return "ok";
  } catch (error) {
    return error instanceof ConnectError ? Code[error.code] : String(error);
  } finally {
    client.close();
  }
}

it("sets a new root password in a stopped embedded database, re-enables root, and the server warns that VERDICT_ROOT_PASSWORD is ignored", async () => {
  const firstLogs: string[] = [];
  const first = await startTestVerdict({ VERDICT_DATA_DIR: dataDir, VERDICT_LOG_LEVEL: "info" }, undefined, firstLogs);
  let refreshToken: string;
  try {
    expect(firstLogs.join("\n")).not.toContain(IGNORED);
    const client = createVerdictClient({ url: first.httpBase });
    refreshToken = (await client.auth.login({ username: "root", password: ROOT_PASSWORD })).tokens!.refreshToken;
    const root = await first.store.getUserByUsername("root");
    await first.store.setUserDisabled(root!.id, true, { userId: "test" });
  } finally {
    await first.close();
  }

  const reset = await runCli(["reset-root", "--enable"], { env: { VERDICT_DATA_DIR: dataDir, ...cheapArgon2 } });
  expect(reset.stderr).toContain("root user root: password reset, its sessions revoked, enabled");
  expect(reset.code).toBe(0);
  const generated = reset.stdout.trim();
  expect(reset.stdout).toBe(`${generated}\n`);
  expect(generated.length).toBeGreaterThanOrEqual(20);

  const secondLogs: string[] = [];
  const second = await startTestVerdict({ VERDICT_DATA_DIR: dataDir, VERDICT_LOG_LEVEL: "info" }, undefined, secondLogs);
  try {
    const warning = secondLogs.find((line) => line.includes(IGNORED));
    expect(warning).toBeDefined();
    expect(JSON.parse(warning!)).toMatchObject({ level: "warn", username: "root" });
    expect(secondLogs.join("\n")).not.toContain(ROOT_PASSWORD);
    expect(await login(second.httpBase, generated)).toBe("ok");
    expect(await login(second.httpBase, ROOT_PASSWORD)).toBe("Unauthenticated");
    const client = createVerdictClient({ url: second.httpBase });
    const refreshed = await client.auth.refresh({ refreshToken }).catch((e: unknown) => e);
    expect(refreshed).toBeInstanceOf(ConnectError);
  } finally {
    await second.close();
  }

  const chosen = await runCli(["reset-root", "--password-stdin", "-o", "json"], { env: { VERDICT_DATA_DIR: dataDir, ...cheapArgon2 }, stdin: "a-chosen-root-password\n" });
  expect(chosen.code).toBe(0);
  expect(chosen.stdout).not.toContain("a-chosen-root-password");
  expect(JSON.parse(chosen.stdout)).toMatchObject({ username: "root", enabled: false, disabled: false });
}, 120_000);

it("refuses clearly: no database in the directory (2), no such root user (5), a short password (2)", async () => {
  const empty = mkdtempSync(join(tmpdir(), "verdict-reset-root-empty-"));
  try {
    const none = await runCli(["reset-root"], { env: { VERDICT_DATA_DIR: empty } });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain(`no embedded database in ${empty}`);
    expect(none.stdout).toBe("");
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
  const short = await runCli(["reset-root", "--password-stdin"], { env: { VERDICT_DATA_DIR: dataDir }, stdin: "short" });
  expect(short.code).toBe(2);
  expect(short.stderr).toContain("at least 12 characters");
  const nobody = await runCli(["reset-root"], { env: { VERDICT_DATA_DIR: dataDir, VERDICT_ROOT_USERNAME: "nobody" } });
  expect(nobody.code).toBe(5);
  expect(nobody.stderr).toContain("no user nobody");
  expect(nobody.stdout).toBe("");
}, 120_000);
