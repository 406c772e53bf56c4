/**
 * The embedded database's directory is its owner's only: created 0700, tightened to 0700 when found
 * open to group or others (reported once), refused when it belongs to another user or is no
 * directory, with a message naming it.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { prepareDataDir } from "../../src/store/data-dir.js";

const mode = (path: string) => statSync(path).mode & 0o777;
const isRoot = process.getuid?.() === 0;

describe("the embedded database's directory", () => {
  let base: string;
  let warnings: string[];
  const warn = (message: string) => void warnings.push(message);
  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), "verdict-data-"));
    chmodSync(base, 0o755);
    warnings = [];
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  it("is created 0700, its missing parents as usual, and nothing is reported", () => {
    const dir = join(base, "var", "verdict", "data");
    prepareDataDir(dir, warn);
    expect(mode(dir)).toBe(0o700);
    expect(mode(join(base, "var"))).not.toBe(0o700);
    expect(warnings).toEqual([]);
    prepareDataDir(dir, warn);
    expect(warnings).toEqual([]);
  });

  it.each(["755", "750", "705", "777", "2775", "711"])("is tightened to 0700 when found with mode %s, and that is reported naming it", (wide) => {
    const dir = join(base, "data");
    mkdirSync(dir);
    chmodSync(dir, parseInt(wide, 8));
    writeFileSync(join(dir, "PG_VERSION"), "17\n");
    prepareDataDir(dir, warn);
    expect(statSync(dir).mode & 0o7777).toBe(0o700);
    expect(warnings).toEqual([expect.stringMatching(new RegExp(`${dir} .*\\(mode 0*${wide}\\).*0700`))]);
  });

  it("leaves a directory of mode 0700 or narrower as it is", () => {
    const dir = join(base, "data");
    mkdirSync(dir);
    chmodSync(dir, 0o500);
    prepareDataDir(dir, warn);
    expect(mode(dir)).toBe(0o500);
    expect(warnings).toEqual([]);
  });

  it("refuses a path that is not a directory", () => {
    const file = join(base, "data");
    writeFileSync(file, "");
    expect(() => prepareDataDir(file, warn)).toThrow(new RegExp(`${file} is not a directory`));
  });

  it.skipIf(!isRoot)("refuses a directory that belongs to another user, naming it and the fix, and leaves its mode alone", () => {
    const dir = join(base, "data");
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    chownSync(dir, 65534, 65534);
    expect(() => prepareDataDir(dir, warn)).toThrow(new RegExp(`${dir} belongs to another user \\(uid 65534;.*VERDICT_DATA_DIR`));
    expect(mode(dir)).toBe(0o755);
  });
});
