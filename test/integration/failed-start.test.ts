/**
 * A start that fails after the store is open (a rules file that does not parse, a port in use)
 * closes what it opened: the load loop stops and the database closes, so a failed start leaks no
 * connection, thread or migration still running against the database.
 */
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPgliteDriver } from "../../src/store/pglite.js";
import { createSqlStore } from "../../src/store/sql-store.js";
import { startTestVerdict } from "../helpers/verdict.js";

/** Starts a replica on its own embedded store that must fail; resolves once the store's thread has exited. */
async function failedStart(env: Record<string, string>, expected: string | RegExp): Promise<void> {
  const driver = createPgliteDriver({ dataDir: "memory://" });
  const thread = await driver.thread;
  const exited = once(thread, "exit");
  await expect(startTestVerdict(env, undefined, undefined, { store: createSqlStore(driver) })).rejects.toThrow(expected);
  const closed = await Promise.race([exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 10_000))]);
  expect(closed).toBe(true);
}

describe("a start that fails", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "verdict-failed-start-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("on a rules file that does not parse closes the database it opened", async () => {
    const path = join(dir, "rules.yaml");
    await writeFile(path, "rules:\n  - match: GET /v1/ord*\n    action: read:orders\n");
    await failedStart({ VERDICT_EXT_AUTHZ_RULES: path }, "mixes '*' with other characters");
  }, 30_000);

  it("on an HTTP port in use closes the gRPC server and the database it opened", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", () => resolve()));
    const port = (taken.address() as { port: number }).port;
    try {
      await failedStart({ VERDICT_HTTP_ADDR: `127.0.0.1:${port}` }, /EADDRINUSE/);
    } finally {
      taken.close();
    }
  }, 30_000);
});
