/**
 * The README's first session, run as written: the start block's variables (the root password the
 * README tells the user to set) start the built server as a child process on a fresh embedded
 * database, then every `<!-- first-session -->` shell block runs in one bash, in README order, and
 * each command's output is checked against the `# -> ` line under it (`...` stands for anything).
 * So the README cannot drift from what Verdict does.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ReplicaProcess, buildReplica, spawnReplica } from "../helpers/replica-process.js";

const README = path.resolve(import.meta.dirname, "../../README.md");

/** One command of a block (continuation lines joined) and the output it must print, if the README says. */
interface Step {
  readonly command: string;
  readonly expected?: string;
}

/** The shell blocks that follow `marker` (an HTML comment line), in README order. */
function blocksAfter(readme: string, marker: string): string[] {
  const fence = new RegExp(`^${marker}\\n\`\`\`sh\\n([\\s\\S]*?)^\`\`\`$`, "gm");
  return [...readme.matchAll(fence)].map((m) => m[1]);
}

/** A block's commands, each with the `# -> ` line right under it. */
function steps(block: string): Step[] {
  const out: Array<{ command: string; expected?: string }> = [];
  let open = "";
  for (const line of block.split("\n")) {
    if (open !== "") {
      open += `\n${line}`;
      if (!line.endsWith("\\")) {
        out.push({ command: open });
        open = "";
      }
    } else if (line.startsWith("# -> ")) {
      const last = out.at(-1);
      if (!last || last.expected !== undefined) throw new Error(`README: "${line}" follows no command`);
      last.expected = line.slice("# -> ".length);
    } else if (line.trim() !== "" && !line.startsWith("#")) {
      if (line.endsWith("\\")) open = line;
      else out.push({ command: line });
    }
  }
  return out;
}

/** The expected line as a whole-output pattern: literal text, `...` for anything. */
function pattern(expected: string): RegExp {
  return new RegExp(`^${expected.split("...").map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("[\\s\\S]*")}$`);
}

describe("README: the first session runs as written against a fresh server", () => {
  const readme = readFileSync(README, "utf8");
  const dataDir = mkdtempSync(path.join(tmpdir(), "verdict-readme-"));
  let build: Awaited<ReturnType<typeof buildReplica>>;
  let server: ReplicaProcess;

  beforeAll(async () => {
    const [start] = blocksAfter(readme, "<!-- first-session: server -->");
    const m = /^((?:[A-Z_]+='[^']*' )+)npm start$/m.exec(start ?? "");
    if (!m) throw new Error("README: the first-session server block must be VAR='value' ... npm start");
    const readmeEnv = Object.fromEntries([...m[1].matchAll(/([A-Z_]+)='([^']*)'/g)].map((v) => [v[1], v[2]]));
    expect(readmeEnv).toHaveProperty("VERDICT_ROOT_PASSWORD");
    build = await buildReplica("readme");
    server = await spawnReplica("readme", build.main, {
      PATH: process.env.PATH ?? "",
      VERDICT_GRPC_ADDR: "127.0.0.1:0",
      VERDICT_HTTP_ADDR: "127.0.0.1:0",
      VERDICT_DATA_DIR: dataDir,
      VERDICT_LOG_LEVEL: "warn",
      VERDICT_AUDIT_DECISIONS: "false",
      ...readmeEnv,
    });
    for (let i = 0; i < 600 && !(await fetch(`${server.httpBase}/readyz`).then((r) => r.ok, () => false)); i++) await new Promise((r) => setTimeout(r, 100));
  }, 180_000);
  afterAll(async () => {
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("has a start block and session blocks with checked outputs", () => {
    const all = blocksAfter(readme, "<!-- first-session -->").flatMap(steps);
    expect(all.length).toBeGreaterThan(10);
    expect(all.filter((s) => s.expected !== undefined).length).toBeGreaterThan(8);
  });

  it("every command prints what the README says it prints", async () => {
    const all = blocksAfter(readme, "<!-- first-session -->").flatMap(steps);
    const script = ["set -euo pipefail", ...all.map((s, i) => `printf '\\n@@step %d@@\\n' ${i}\n${s.command}`), "printf '\\n@@end@@\\n'"].join("\n");
    const { stdout } = await promisify(execFile)("bash", ["-c", script], {
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", VERDICT_URL: server.httpBase },
      timeout: 120_000,
    }).catch((error: { stdout: string; stderr: string; message: string }) => {
      throw new Error(`the first session failed: ${error.message}\n${error.stdout}\n${error.stderr}\n${server.output()}`);
    });
    expect(stdout).toContain("@@end@@");
    const outputs = stdout.split(/\n@@(?:step \d+|end)@@\n/).slice(1);
    all.forEach((step, i) => {
      if (step.expected !== undefined) expect(outputs[i].trim(), step.command).toMatch(pattern(step.expected));
    });
  });
});
