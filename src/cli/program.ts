/**
 * The `verdict` command line: global options, the session commands (login, logout), check,
 * status, version and reset-root, plus the admin commands; runCli runs one command line and
 * returns its exit code (the binary and in-process tests share it).
 */
import { Command, CommanderError, Option } from "commander";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CheckBatchResponseSchema, CheckResponseSchema, HealthCheckResponse_ServingStatus, Reason } from "../client/index.js";
import { addAdminCommands } from "./admin-commands.js";
import { type CliRun, commandContext, parseWhole } from "./context.js";
import { readSession, removeSession, writeSession } from "./credentials-file.js";
import { resolveCredentials } from "./connection.js";
import { CliError, EXIT, toCliError } from "./exit-codes.js";
import { type CliIo, readSecret, readSecretFromStdin } from "./io.js";
import { printJson, printMessage } from "./output.js";
import { resetRoot } from "./reset-root.js";

function packageVersion(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "verdict" && pkg.version) return pkg.version;
    } catch {
      // not here: look one directory up
    }
  }
  return "unknown";
}

const reasonName = (reason: Reason) => `REASON_${Reason[reason] ?? reason}`;

/** Reads one line from stdin without a prompt (a username piped in). */
async function readLine(io: CliIo, what: string): Promise<string> {
  const { createInterface } = await import("node:readline/promises");
  const rl = createInterface({ input: io.stdin, output: io.stderr as NodeJS.WritableStream, terminal: false });
  try {
    io.stderr.write(`${what}: `);
    const answer = (await rl.question("")).trim();
    if (answer === "") throw new CliError(`no ${what} given`, EXIT.usage);
    return answer;
  } finally {
    rl.close();
  }
}

function addSessionCommands(program: Command, run: CliRun): void {
  program
    .command("login")
    .description("log in with a username and password; the tokens are stored in ~/.config/verdict (0600)")
    .option("-u, --username <name>", "the username (asked for when missing)")
    .option("--password-stdin", "read the password from stdin instead of a prompt")
    .option("-t, --tenant <tenant>", "scope the session to one tenant")
    .action(async (options: { username?: string; passwordStdin?: boolean; tenant?: string }, command: Command) => {
      const ctx = commandContext(run, command);
      if (options.passwordStdin && !options.username) throw new CliError("--password-stdin needs --username", EXIT.usage);
      const username = options.username ?? (await readLine(ctx.io, "username"));
      const password = await readSecret(ctx.io, { fromStdin: options.passwordStdin === true, what: "password", flag: "--password-stdin" });
      await ctx.withAnonymous(async (client) => {
        const { tokens } = await client.auth.login({ username, password, tenant: options.tenant ?? "" });
        if (!tokens) throw new CliError("Login answered without tokens", EXIT.internal);
        const path = writeSession(ctx.io.env, {
          url: ctx.connect.url,
          username,
          tenant: tokens.tenant,
          accessToken: tokens.accessToken,
          refreshToken: tokens.refreshToken,
          accessExpiresAtMs: Date.now() + Number(tokens.expiresIn) * 1000,
        });
        if (ctx.format === "json") printJson(ctx.io, { url: ctx.connect.url, username, tenant: tokens.tenant, sessionId: tokens.sessionId, credentialsFile: path });
        else ctx.io.stdout.write(`logged in to ${ctx.connect.url} as ${username}${tokens.tenant ? ` in ${tokens.tenant}` : ""}; session stored in ${path}\n`);
      });
    });

  program
    .command("logout")
    .description("revoke the stored session and forget it")
    .action(async (_options: unknown, command: Command) => {
      const ctx = commandContext(run, command);
      const session = readSession(ctx.io.env);
      if (!session) {
        ctx.io.stdout.write("not logged in\n");
        return;
      }
      let note = "";
      try {
        await ctx.withAnonymous((client) => client.auth.logout({ refreshToken: session.refreshToken }));
      } catch (error) {
        note = ` (the server did not confirm the revocation: ${(error as Error).message})`;
      }
      removeSession(ctx.io.env);
      ctx.io.stdout.write(`logged out of ${session.url}${note}\n`);
    });
}

function addCheckCommand(program: Command, run: CliRun): void {
  program
    .command("check")
    .description("ask Verdict whether a credential may do an action in a tenant (exit 0 allowed, 1 denied)")
    .option("-c, --credential <credential>", "the credential (API key or token); it stays in your shell history, prefer the next two")
    .option("--credential-stdin", "read the credential from stdin")
    .option("--credential-env <variable>", "read the credential from this environment variable")
    .requiredOption("-a, --action <action>", "verb:resource, for example read:orders (repeat for a batch)", (v: string, prev: string[] = []) => [...prev, v])
    .requiredOption("-t, --tenant <tenant>", "the tenant")
    .option("--min-version <version>", "answer at this policy version or later", parseWhole("--min-version"))
    .action(async (options: { credential?: string; credentialStdin?: boolean; credentialEnv?: string; action: string[]; tenant: string; minVersion?: number }, command: Command) => {
      const ctx = commandContext(run, command);
      const sources = [options.credential !== undefined, options.credentialStdin === true, options.credentialEnv !== undefined].filter(Boolean).length;
      if (sources !== 1) throw new CliError("give the credential with exactly one of --credential, --credential-stdin or --credential-env", EXIT.usage);
      let credential = options.credential ?? "";
      if (options.credentialStdin) credential = await readSecretFromStdin(ctx.io, "credential");
      if (options.credentialEnv !== undefined) {
        credential = ctx.io.env[options.credentialEnv] ?? "";
        if (credential === "") throw new CliError(`the environment variable ${options.credentialEnv} is empty or unset`, EXIT.usage);
      }
      const minVersion = BigInt(options.minVersion ?? 0);
      // The caller's own credential goes along when there is one (VERDICT_CHECK_REQUIRE_CALLER).
      const caller = await resolveCredentials(ctx.connect).catch(() => undefined);
      const call = caller ? ctx.withAdmin.bind(ctx) : ctx.withAnonymous.bind(ctx);
      await call(async (client) => {
        if (options.action.length === 1) {
          const res = await client.check({ credential, action: options.action[0], tenant: options.tenant, minVersion });
          if (ctx.format === "json") printMessage(ctx.io, CheckResponseSchema, res);
          else {
            const who = res.principal?.username ? ` as ${res.principal.username}${res.principal.keyId ? ` (key ${res.principal.keyId})` : ""}` : "";
            ctx.io.stdout.write(
              res.allowed
                ? `allowed${who}: ${options.action[0]} in ${options.tenant} (${reasonName(res.reason)}, policy version ${res.policyVersion})\n`
                : `denied${who}: ${options.action[0]} in ${options.tenant}: ${reasonName(res.reason)}${res.message ? `: ${res.message}` : ""} (policy version ${res.policyVersion})\n`,
            );
          }
          run.exitCode = res.allowed ? EXIT.ok : EXIT.denied;
          return;
        }
        const res = await client.checkBatch({ credential, actions: options.action, tenant: options.tenant, minVersion });
        if (ctx.format === "json") printMessage(ctx.io, CheckBatchResponseSchema, res);
        else for (const d of res.decisions) ctx.io.stdout.write(`${d.allowed ? "allowed" : "denied "}  ${d.action}  ${reasonName(d.reason)}\n`);
        run.exitCode = res.decisions.length > 0 && res.decisions.every((d) => d.allowed) ? EXIT.ok : EXIT.denied;
      });
    });
}

function addStatusCommands(program: Command, run: CliRun): void {
  program
    .command("status")
    .description("health of the Verdict at --url, its policy version and replica lag (exit 3 when not serving)")
    .action(async (_options: unknown, command: Command) => {
      const ctx = commandContext(run, command);
      const health = await ctx.withAnonymous((client) => client.health.check({ service: "" }));
      const serving = health.status === HealthCheckResponse_ServingStatus.SERVING;
      let versions: { committed: string; applied: string; lag: string } | undefined;
      let versionNote = "";
      if (await resolveCredentials(ctx.connect).catch(() => undefined)) {
        try {
          const v = await ctx.withAdmin((client) => client.admin.getPolicyVersion({}));
          versions = { committed: v.committedVersion.toString(), applied: v.appliedVersion.toString(), lag: (v.committedVersion - v.appliedVersion).toString() };
        } catch (error) {
          versionNote = (error as Error).message;
        }
      } else versionNote = "log in (or set VERDICT_TOKEN / VERDICT_API_KEY) to see the policy version";
      if (ctx.format === "json") printJson(ctx.io, { url: ctx.connect.url, health: HealthCheckResponse_ServingStatus[health.status], policyVersion: versions ?? null });
      else {
        ctx.io.stdout.write(`url:             ${ctx.connect.url}\n`);
        ctx.io.stdout.write(`health:          ${HealthCheckResponse_ServingStatus[health.status]}\n`);
        ctx.io.stdout.write(
          versions
            ? `policy version:  ${versions.applied} applied, ${versions.committed} committed (lag ${versions.lag})\n`
            : `policy version:  unknown (${versionNote})\n`,
        );
      }
      if (!serving) run.exitCode = EXIT.unreachable;
    });

  program
    .command("version")
    .description("print the CLI's version")
    .action((_options: unknown, command: Command) => {
      const ctx = commandContext(run, command);
      if (ctx.format === "json") printJson(ctx.io, { version: packageVersion() });
      else ctx.io.stdout.write(`verdict ${packageVersion()}\n`);
    });

  program
    .command("reset-root")
    .description("beside the database (DATABASE_URL or VERDICT_DATA_DIR): set a new root password and print it once")
    .option("--password-stdin", "read the new password from stdin instead of generating one")
    .option("--enable", "enable root if it is disabled")
    .action(async (options: { passwordStdin?: boolean; enable?: boolean }, command: Command) => {
      const ctx = commandContext(run, command);
      const chosen = options.passwordStdin ? await readSecretFromStdin(ctx.io, "password") : undefined;
      const warn = (message: string) => void ctx.io.stderr.write(`verdict: warning: ${message}\n`);
      const result = await resetRoot(ctx.io.env, { password: chosen, enable: options.enable === true, warn });
      if (ctx.format === "json") printJson(ctx.io, { ...result, password: chosen === undefined ? result.password : undefined });
      else {
        ctx.io.stderr.write(`root user ${result.username}: password reset, its sessions revoked${result.enabled ? ", enabled" : ""}${result.disabled ? " (still disabled: add --enable)" : ""}\n`);
        if (chosen === undefined) ctx.io.stdout.write(`${result.password}\n`);
      }
    });
}

/** Builds the program for one run. */
export function createProgram(run: CliRun): Command {
  const program = new Command("verdict")
    .description("Operate a Verdict policy decision service")
    .version(packageVersion(), "-V, --version", "print the CLI's version")
    .addOption(new Option("--url <url>", "Verdict's HTTP address (env VERDICT_URL; default http://localhost:8080); grpc://host:port for gRPC"))
    .addOption(new Option("-o, --output <format>", "table for people, json for scripts").choices(["table", "json"]).default("table"))
    .addOption(new Option("--timeout <ms>", "deadline of each call in milliseconds").default(10_000).argParser(parseWhole("--timeout")))
    .exitOverride()
    .showHelpAfterError("(run 'verdict --help' for the commands)")
    .configureOutput({ writeOut: (s) => run.io.stdout.write(s), writeErr: (s) => run.io.stderr.write(s) });
  program.addHelpText(
    "after",
    "\nEnvironment: VERDICT_URL, VERDICT_TOKEN, VERDICT_API_KEY (credentials for the admin commands),\n" +
      "XDG_CONFIG_HOME (where 'login' keeps its session); reset-root reads DATABASE_URL, VERDICT_DATA_DIR.\n" +
      "Exit codes: 0 ok/allowed, 1 denied, 2 usage, 3 unreachable or not serving, 4 not authenticated or not\n" +
      "allowed, 5 refused by Verdict (invalid, not found, exists), 6 unexpected failure.\n",
  );
  addSessionCommands(program, run);
  addAdminCommands(program, run);
  addCheckCommand(program, run);
  addStatusCommands(program, run);
  for (const sub of program.commands) {
    sub.exitOverride();
    for (const leaf of sub.commands) leaf.exitOverride();
  }
  return program;
}

/** Runs one command line (without "node" and the script) and returns the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const run: CliRun = { io, exitCode: EXIT.ok };
  try {
    await createProgram(run).parseAsync([...argv], { from: "user" });
    return run.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    const cliError = toCliError(error, "");
    io.stderr.write(`verdict: ${cliError.message}\n`);
    return cliError.exitCode;
  }
}
