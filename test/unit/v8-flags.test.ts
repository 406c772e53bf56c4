/**
 * The V8 flags a serving process applies (src/runtime/v8-flags.ts): which ones, and that the heap
 * growing percent really changes how the old generation is collected in a process that applies it
 * at run time (more, so shorter, full collections for the same work).
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { singleThreadedWorkerGc, v8Flags, workerExecArgv } from "../../src/runtime/v8-flags.js";
import { REPO_ROOT } from "../helpers/cli.js";

const run = promisify(execFile);

describe("v8Flags", () => {
  it("adds Liftoff-only compilation for the embedded database and the heap growing percent unless 0", () => {
    expect(v8Flags({ embeddedDatabase: true, heapGrowingPercent: 50 })).toEqual(["--liftoff-only", "--heap-growing-percent=50"]);
    expect(v8Flags({ embeddedDatabase: false, heapGrowingPercent: 20 })).toEqual(["--heap-growing-percent=20"]);
    expect(v8Flags({ embeddedDatabase: false, heapGrowingPercent: 0 })).toEqual([]);
  });

  it("gives the workers the single-threaded collector when told, or under auto when every CPU has a worker", () => {
    expect(workerExecArgv("auto", 2, 2)).toEqual(["--single-threaded-gc"]);
    expect(workerExecArgv("auto", 4, 2)).toEqual(["--single-threaded-gc"]);
    expect(workerExecArgv("auto", 2, 4)).toEqual([]);
    expect(workerExecArgv("single-threaded", 2, 16)).toEqual(["--single-threaded-gc"]);
    expect(workerExecArgv("parallel", 2, 2)).toEqual([]);
    expect(singleThreadedWorkerGc("parallel", 8, 2)).toBe(false);
    expect(singleThreadedWorkerGc("single-threaded", 2, 64)).toBe(true);
  });

  it("collects the old generation more often with a smaller growing percent, applied at run time", async () => {
    const module = pathToFileURL(join(REPO_ROOT, "dist", "src", "runtime", "v8-flags.js")).href;
    const script = join(REPO_ROOT, "test", "fixtures", "process", "old-generation-churn.mjs");
    const majors = async (percent: number) => {
      const { stdout } = await run(process.execPath, [script, module, String(percent)]);
      return (JSON.parse(stdout) as { majors: number }).majors;
    };
    const heuristic = await majors(0);
    const growing20 = await majors(20);
    expect(growing20).toBeGreaterThanOrEqual(2 * Math.max(1, heuristic));
  }, 60_000);
});
