/**
 * What every command gets: the streams, the output format, where Verdict is, and a place for the
 * exit code a command chooses (check: 1 when denied).
 */
import { type Command, InvalidArgumentError } from "commander";
import type { VerdictClient } from "../client/index.js";
import { type ConnectOptions, anonymousClient, authenticatedClient, resolveUrl } from "./connection.js";
import { toCliError } from "./exit-codes.js";
import type { CliIo } from "./io.js";
import type { OutputFormat } from "./output.js";

/** The global options (on the root command). */
export interface GlobalOptions {
  readonly url?: string;
  readonly output: OutputFormat;
  readonly timeout: number;
}

/** Shared state of one CLI run. */
export interface CliRun {
  readonly io: CliIo;
  exitCode: number;
}

/** One command's view: format, connection, and helpers that map errors to exit codes. */
export interface CommandContext {
  readonly io: CliIo;
  readonly run: CliRun;
  readonly format: OutputFormat;
  readonly connect: ConnectOptions;
  /** Runs `fn` with a client carrying the caller's credential (fails with exit 4 without one). */
  withAdmin<T>(fn: (client: VerdictClient) => Promise<T>): Promise<T>;
  /** Runs `fn` with a client without caller credential. */
  withAnonymous<T>(fn: (client: VerdictClient) => Promise<T>): Promise<T>;
}

/** Builds the context of the command being run. */
export function commandContext(run: CliRun, command: Command): CommandContext {
  const options = command.optsWithGlobals<GlobalOptions>();
  const connect: ConnectOptions = { url: resolveUrl(run.io.env, options.url), env: run.io.env, timeoutMs: options.timeout };
  const using = async <T>(make: () => VerdictClient | Promise<VerdictClient>, fn: (client: VerdictClient) => Promise<T>): Promise<T> => {
    let client: VerdictClient | undefined;
    try {
      client = await make();
      return await fn(client);
    } catch (error) {
      throw toCliError(error, connect.url);
    } finally {
      client?.close();
    }
  };
  return {
    io: run.io,
    run,
    format: options.output,
    connect,
    withAdmin: (fn) => using(() => authenticatedClient(connect), fn),
    withAnonymous: (fn) => using(() => anonymousClient(connect), fn),
  };
}

/** Parses a whole number option. */
export function parseWhole(name: string): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`${name} must be a whole number.`);
    return Number(value);
  };
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a duration such as 90s, 15m, 12h or 30d into milliseconds. */
export function parseDuration(value: string): number {
  const match = /^(\d+)([smhd])$/.exec(value);
  if (!match || Number(match[1]) === 0) throw new InvalidArgumentError("Use a duration such as 90s, 15m, 12h or 30d.");
  return Number(match[1]) * UNIT_MS[match[2]];
}
