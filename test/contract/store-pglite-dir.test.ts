/**
 * The embedded store in a directory, as `npm start` uses it: the first open creates the database
 * (in a worker thread), and a second open finds it with what was written.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createPgliteStore } from "../../src/store/pglite.js";

describe("pglite in a data directory", () => {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), "verdict-pglite-")), "data");
  afterAll(() => rmSync(path.dirname(dir), { recursive: true, force: true }));

  it("creates the database on the first open and finds it again on the next", async () => {
    const first = createPgliteStore({ dataDir: dir });
    await first.migrate();
    expect(existsSync(path.join(dir, "PG_VERSION"))).toBe(true);
    await first.createTenant({ id: "acme", displayName: "Acme", disabled: false, createdAtMs: 1 }, { userId: "system" });
    await first.close();

    const second = createPgliteStore({ dataDir: dir });
    await second.migrate();
    expect((await second.listTenants()).map((t) => t.id)).toEqual(["acme"]);
    await second.close();
  }, 120_000);
});
