/**
 * The `verdict` binary against a real server (Postgres, fresh schema): each step spawns
 * `node dist/src/cli/main.js` as a user would, with its own config directory.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { CLI_MAIN, type CliResult, runCli } from "../helpers/cli.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

type Verdict = Awaited<ReturnType<typeof startTestVerdict>>;

let verdict: Verdict;
let schema: string;
let home: string;
let env: Record<string, string>;

const cli = (args: string[], options: { stdin?: string; env?: Record<string, string> } = {}): Promise<CliResult> =>
  runCli(args, { env: { ...env, ...options.env }, stdin: options.stdin });

const json = (result: CliResult): Record<string, unknown> => {
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout) as Record<string, unknown>;
};

beforeAll(async () => {
  schema = freshSchema();
  verdict = await startTestVerdict({ DATABASE_URL: TEST_DATABASE_URL }, schema);
  home = mkdtempSync(join(tmpdir(), "verdict-cli-"));
  env = { XDG_CONFIG_HOME: join(home, "config"), HOME: home, VERDICT_URL: verdict.httpBase };
}, 120_000);

afterAll(async () => {
  await verdict?.close();
  if (schema) await dropSchema(schema);
  if (home) rmSync(home, { recursive: true, force: true });
});

// Each step spawns a Node process; on a loaded machine one takes seconds.
describe("verdict CLI", { timeout: 120_000 }, () => {
  it("refuses admin commands before login with exit 4 and says how to log in", async () => {
    const r = await cli(["tenants", "list"]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/not logged in to http:\/\/127\.0\.0\.1:\d+: run 'verdict login'/);
    expect(r.stdout).toBe("");
  });

  it("answers a wrong password with exit 4 and stores nothing", async () => {
    const r = await cli(["login", "-u", "root", "--password-stdin"], { stdin: "not-the-root-password\n" });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain("invalid username or password");
    expect(() => statSync(join(home, "config", "verdict", "credentials.json"))).toThrow();
  });

  it("logs in, keeping the session in a 0600 file in a 0700 directory without the password", async () => {
    const r = await cli(["login", "-u", "root", "--password-stdin"], { stdin: `${ROOT_PASSWORD}\n` });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const file = join(home, "config", "verdict", "credentials.json");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, "config", "verdict")).mode & 0o777).toBe(0o700);
    const stored = readFileSync(file, "utf8");
    expect(stored).not.toContain(ROOT_PASSWORD);
    expect(JSON.parse(stored)).toMatchObject({ url: verdict.httpBase, username: "root" });
  });

  it("reports status: serving, applied and committed policy versions, no lag", async () => {
    const status = json(await cli(["status", "-o", "json"]));
    expect(status).toMatchObject({ url: verdict.httpBase, health: "SERVING" });
    const versions = status.policyVersion as Record<string, string>;
    expect(versions.lag).toBe("0");
    expect(Number(versions.applied)).toBe(verdict.engine.version);
  });

  it("creates a tenant, a user, a role and a grant, and lists them as tables and as JSON", async () => {
    expect((await cli(["tenants", "create", "acme", "--display-name", "Acme Corp"])).stdout).toMatch(/^created tenant acme \(policy version \d+\)\n$/);
    const user = await cli(["users", "create", "alice", "--password-stdin"], { stdin: "alice-password-123\n" });
    expect(user.code).toBe(0);
    expect(user.stdout).not.toContain("alice-password-123");
    expect((await cli(["roles", "put", "order-reader", "-p", "read:orders", "-p", "list:*", "--description", "reads orders"])).code).toBe(0);
    const grant = await cli(["grant", "GRANT order-reader, WRITE TO alice", "--tenant", "acme"]);
    expect(grant.code).toBe(0);
    expect(grant.stdout).toMatch(/acme\s+alice\s+WRITE/);

    const tenants = json(await cli(["tenants", "-o", "json"]));
    expect(tenants.tenants).toEqual([expect.objectContaining({ id: "acme", displayName: "Acme Corp" })]);
    const table = await cli(["users"]);
    expect(table.stdout.split("\n")[0]).toMatch(/^USERNAME\s+ID\s+DISABLED\s+ROOT\s+CREATED$/);
    expect(table.stdout).toMatch(/\nalice\s+[0-9a-f-]{36}\s+no\s+no\s+\d{4}-/);
    const bindings = json(await cli(["bindings", "list", "--tenant", "acme", "-o", "json"]));
    expect((bindings.bindings as { role: string }[]).map((b) => b.role).sort()).toEqual(["WRITE", "order-reader"]);
  });

  it("prints a new key's secret alone on stdout; check exits 0 when allowed and 1 when denied, with the reason", async () => {
    const created = await cli(["keys", "create", "--name", "alice-ci", "--owner", "alice", "--tenant", "acme"]);
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^vk_[A-Za-z0-9_]+\n$/);
    expect(created.stderr).toContain("shown once");
    const secret = created.stdout.trim();

    const allowed = await cli(["check", "--credential-stdin", "--action", "read:orders", "--tenant", "acme"], { stdin: `${secret}\n` });
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toMatch(/^allowed as alice \(key \w+\): read:orders in acme \(REASON_ALLOWED/);

    const denied = await cli(["check", "--credential-env", "ALICE_KEY", "-a", "admin:users", "-t", "acme"], { env: { ALICE_KEY: secret } });
    expect(denied.code).toBe(1);
    expect(denied.stdout).toContain("REASON_FORBIDDEN");

    const otherTenant = await cli(["check", "--credential-env", "ALICE_KEY", "-a", "read:orders", "-t", "globex", "-o", "json"], { env: { ALICE_KEY: secret } });
    expect(otherTenant.code).toBe(1);
    expect(JSON.parse(otherTenant.stdout)).toMatchObject({ allowed: false, reason: "REASON_UNKNOWN_TENANT" });

    const batch = await cli(["check", "--credential-env", "ALICE_KEY", "-a", "read:orders", "-a", "write:orders", "-a", "admin:users", "-t", "acme"], { env: { ALICE_KEY: secret } });
    expect(batch.code).toBe(1);
    expect(batch.stdout).toMatch(/allowed\s+read:orders[\s\S]*allowed\s+write:orders[\s\S]*denied\s+admin:users\s+REASON_FORBIDDEN/);
  });

  it("rotates a key (old secret unknown, new allowed) and revokes it (denied REVOKED)", async () => {
    const keys = json(await cli(["keys", "list", "--owner", "alice", "-o", "json"]));
    const key = (keys.apiKeys as { id: string; name: string }[]).find((k) => k.name === "alice-ci")!;
    const first = (await cli(["keys", "create", "--name", "alice-two", "--owner", "alice"])).stdout.trim();
    const two = (json(await cli(["keys", "list", "--owner", "alice", "-o", "json"])).apiKeys as { id: string; name: string }[]).find((k) => k.name === "alice-two")!;

    const rotated = await cli(["keys", "rotate", two.id]);
    expect(rotated.code).toBe(0);
    const second = rotated.stdout.trim();
    expect(second).toMatch(/^vk_/);
    expect(second).not.toBe(first);
    const check = (credential: string) => cli(["check", "--credential-stdin", "-a", "read:orders", "-t", "acme", "-o", "json"], { stdin: credential });
    const old = await check(first);
    expect(old.code).toBe(1);
    expect(JSON.parse(old.stdout).reason).not.toBe("REASON_ALLOWED");
    expect((await check(second)).code).toBe(0);

    expect((await cli(["keys", "revoke", two.id])).code).toBe(0);
    const revoked = await check(second);
    expect(revoked.code).toBe(1);
    expect(JSON.parse(revoked.stdout).reason).toBe("REASON_REVOKED");

    const table = await cli(["keys", "list", "--owner", "alice"]);
    expect(table.stdout).toMatch(new RegExp(`\\n${key.id}\\s+alice-ci\\s+alice\\s+acme\\s`));
  });

  it("sets a password from stdin and disables a user; the user's key is then denied DISABLED", async () => {
    expect((await cli(["users", "set-password", "alice", "--password-stdin"], { stdin: "alice-new-password-456\n" })).code).toBe(0);
    const aliceHome = mkdtempSync(join(tmpdir(), "verdict-cli-alice-"));
    try {
      const asAlice = { XDG_CONFIG_HOME: aliceHome };
      expect((await cli(["login", "-u", "alice", "--password-stdin"], { stdin: "alice-password-123", env: asAlice })).code).toBe(4);
      expect((await cli(["login", "-u", "alice", "--password-stdin"], { stdin: "alice-new-password-456", env: asAlice })).code).toBe(0);
      const forbidden = await cli(["tenants", "create", "globex"], { env: asAlice });
      expect(forbidden.code).toBe(4);
      expect(forbidden.stderr).toContain("not allowed");
      const wrongCurrent = await cli(["users", "set-password", "--password-stdin"], { stdin: "not-her-password\nalice-third-password-789\n", env: asAlice });
      expect(wrongCurrent.code).toBe(4);
      const own = await cli(["users", "set-password", "--password-stdin"], { stdin: "alice-new-password-456\nalice-third-password-789\n", env: asAlice });
      expect(own.stderr).toBe("");
      expect(own.code).toBe(0);
      // Her other sessions end; the CLI's own session is kept.
      expect((await cli(["keys", "list"], { env: asAlice })).code).toBe(0);
      expect((await cli(["login", "-u", "alice", "--password-stdin"], { stdin: "alice-third-password-789", env: { XDG_CONFIG_HOME: join(aliceHome, "second") } })).code).toBe(0);
    } finally {
      rmSync(aliceHome, { recursive: true, force: true });
    }
    const secret = (await cli(["keys", "create", "--name", "alice-three", "--owner", "alice"])).stdout.trim();
    expect((await cli(["users", "disable", "alice"])).code).toBe(0);
    const denied = await cli(["check", "--credential-stdin", "-a", "read:orders", "-t", "acme", "-o", "json"], { stdin: secret });
    expect(denied.code).toBe(1);
    expect(JSON.parse(denied.stdout).reason).toBe("REASON_DISABLED");
  });

  it("asks for a password on a terminal without echoing it", async () => {
    // script(1) gives the CLI a pseudo-terminal; its output is everything the terminal showed.
    const child = spawn("script", ["-qec", `${process.execPath} ${CLI_MAIN} users create carol`, "/dev/null"], { env: { PATH: process.env.PATH, ...env } });
    let shown = "";
    const waitFor = (text: string, from: number) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${JSON.stringify(text)} on the terminal; it showed ${JSON.stringify(shown)}`)), 20_000);
        const look = () => {
          if (shown.indexOf(text, from) >= 0) {
            clearTimeout(timer);
            child.stdout.off("data", look);
            resolve();
          }
        };
        child.stdout.on("data", look);
        look();
      });
    child.stdout.setEncoding("utf8").on("data", (d: string) => (shown += d));
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    await waitFor("password: ", 0);
    child.stdin.write("carol-secret-password\r");
    await waitFor("password again: ", 0);
    child.stdin.write("carol-secret-password\r");
    expect(await exited).toBe(0);
    child.stdin.end();
    expect(shown).toContain("created user carol");
    expect(shown).not.toContain("carol-secret-password");
    expect((await cli(["login", "-u", "carol", "--password-stdin"], { stdin: "carol-secret-password", env: { XDG_CONFIG_HOME: join(home, "carol") } })).code).toBe(0);
  });

  it("maps failures to exit codes: usage 2, refused 5, unreachable 3, rejected credential 4", async () => {
    const usage = await cli(["keys", "create"]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("required option '-n, --name <name>'");
    expect((await cli(["check", "-a", "read:x", "-t", "acme"])).code).toBe(2);
    expect((await cli(["-o", "yaml", "tenants"])).code).toBe(2);
    const noTerminal = await cli(["users", "create", "bob"]);
    expect(noTerminal.code).toBe(2);
    expect(noTerminal.stderr).toContain("use --password-stdin");

    const exists = await cli(["tenants", "create", "acme"]);
    expect(exists.code).toBe(5);
    expect(exists.stderr).toMatch(/^verdict: already exists: /);
    expect((await cli(["users", "delete", "nobody-here"])).code).toBe(5);

    const unreachable = await cli(["--url", "http://127.0.0.1:1", "status"]);
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toContain("cannot reach Verdict");
    expect((await cli(["status"], { env: { VERDICT_URL: "grpc://127.0.0.1:1" } })).code).toBe(3);

    const badKey = await cli(["tenants"], { env: { VERDICT_API_KEY: "vk_not_a_real_key" } });
    expect(badKey.code).toBe(4);
    expect(badKey.stderr).toContain("credential rejected");
    expect(badKey.stderr).not.toContain("vk_not_a_real_key");
  });

  it("works over gRPC too and with VERDICT_TOKEN", async () => {
    const session = JSON.parse(readFileSync(join(home, "config", "verdict", "credentials.json"), "utf8")) as { accessToken: string };
    const grpc = await cli(["tenants", "-o", "json"], { env: { VERDICT_URL: `grpc://${verdict.grpcAddress}`, VERDICT_TOKEN: session.accessToken } });
    expect(json(grpc).tenants).toEqual([expect.objectContaining({ id: "acme" })]);
  });

  it("logs out: the session is revoked on the server and forgotten locally", async () => {
    const file = join(home, "config", "verdict", "credentials.json");
    const { accessToken } = JSON.parse(readFileSync(file, "utf8")) as { accessToken: string };
    const r = await cli(["logout"]);
    expect(r.code).toBe(0);
    expect(() => statSync(file)).toThrow();
    const after = await cli(["tenants"], { env: { VERDICT_TOKEN: accessToken } });
    expect(after.code).toBe(4);
    expect((await cli(["tenants"])).code).toBe(4);
  });

  it("prints its version", async () => {
    const pkg = JSON.parse(readFileSync(join(__dirname, "..", "..", "package.json"), "utf8")) as { version: string };
    expect((await cli(["version"])).stdout).toBe(`verdict ${pkg.version}\n`);
    expect(json(await cli(["version", "-o", "json"]))).toEqual({ version: pkg.version });
  });
});
