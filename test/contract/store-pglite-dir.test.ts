/**
 * The embedded store in a directory, as `npm start` uses it: the first open creates the database
 * (in a worker thread) in a directory only its owner may enter (0700), and a second open finds it
 * with what was written. A directory found open to others is tightened, and the server says so in
 * its log; one that belongs to another user is refused before anything is read.
 */
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createPgliteStore } from "../../src/store/pglite.js";
import { startTestVerdict } from "../helpers/verdict.js";

const mode = (dir: string) => statSync(dir).mode & 0o777;
const isRoot = process.getuid?.() === 0;

describe("pglite in a data directory", () => {
  const base = mkdtempSync(path.join(tmpdir(), "verdict-pglite-"));
  const dir = path.join(base, "data");
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it("creates the database 0700 on the first open, and finds it again (tightened) on the next", async () => {
    chmodSync(base, 0o755);
    const first = createPgliteStore({ dataDir: dir });
    await first.migrate();
    expect(existsSync(path.join(dir, "PG_VERSION"))).toBe(true);
    expect(mode(dir)).toBe(0o700);
    await first.createTenant({ id: "acme", displayName: "Acme", disabled: false, createdAtMs: 1 }, { userId: "system" });
    await first.close();

    chmodSync(dir, 0o755);
    const warnings: string[] = [];
    const second = createPgliteStore({ dataDir: dir, onTightened: (message) => void warnings.push(message) });
    expect(mode(dir)).toBe(0o700);
    expect(warnings).toEqual([expect.stringContaining(dir)]);
    await second.migrate();
    expect((await second.listTenants()).map((t) => t.id)).toEqual(["acme"]);
    await second.close();
  }, 120_000);

  it("a server on a directory open to others tightens it and warns in its log", async () => {
    chmodSync(dir, 0o750);
    const lines: string[] = [];
    const v = await startTestVerdict({ VERDICT_DATA_DIR: dir, VERDICT_LOG_LEVEL: "warn" }, undefined, lines);
    await v.close();
    expect(mode(dir)).toBe(0o700);
    const warning = lines.map((l) => JSON.parse(l) as { level: string; msg: string; dataDir?: string }).find((l) => l.dataDir === dir);
    expect(warning).toMatchObject({ level: "warn", msg: expect.stringContaining("0750") });
  }, 120_000);

  it.skipIf(!isRoot)("a server refuses to start on a directory of another user, naming it", async () => {
    const theirs = path.join(base, "theirs");
    mkdirSync(theirs, { mode: 0o700 });
    chownSync(theirs, 65534, 65534);
    await expect(startTestVerdict({ VERDICT_DATA_DIR: theirs })).rejects.toThrow(new RegExp(`${theirs} belongs to another user`));
    expect(() => createPgliteStore({ dataDir: theirs })).toThrow(/belongs to another user/);
  });
});
