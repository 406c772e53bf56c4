/**
 * The CLI's exit codes and its one error type; Connect/gRPC codes become readable messages here.
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** Exit codes, documented in the README. */
export const EXIT = {
  ok: 0,
  /** `verdict check`: the action is denied. */
  denied: 1,
  /** Bad command line: unknown command or option, missing or malformed argument. */
  usage: 2,
  /** Verdict cannot be reached, is not serving, or did not answer in time. */
  unreachable: 3,
  /** No credential, or the credential is rejected or not allowed to do this. */
  auth: 4,
  /** Verdict refused the request: invalid, not found, already exists, conflict, rate limited. */
  refused: 5,
  /** Verdict or the CLI failed unexpectedly. */
  internal: 6,
} as const;

/** A failure the CLI reports as one line on stderr and an exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = "CliError";
  }
}

const EXIT_BY_CODE: Partial<Record<Code, number>> = {
  [Code.Unavailable]: EXIT.unreachable,
  [Code.DeadlineExceeded]: EXIT.unreachable,
  [Code.Canceled]: EXIT.unreachable,
  [Code.Unauthenticated]: EXIT.auth,
  [Code.PermissionDenied]: EXIT.auth,
  [Code.InvalidArgument]: EXIT.refused,
  [Code.NotFound]: EXIT.refused,
  [Code.AlreadyExists]: EXIT.refused,
  [Code.FailedPrecondition]: EXIT.refused,
  [Code.Aborted]: EXIT.refused,
  [Code.OutOfRange]: EXIT.refused,
  [Code.ResourceExhausted]: EXIT.refused,
};

const HINT: Partial<Record<Code, string>> = {
  [Code.Unavailable]: "cannot reach Verdict",
  [Code.DeadlineExceeded]: "Verdict did not answer in time",
  [Code.Unauthenticated]: "not authenticated",
  [Code.PermissionDenied]: "not allowed",
  [Code.InvalidArgument]: "invalid request",
  [Code.NotFound]: "not found",
  [Code.AlreadyExists]: "already exists",
  [Code.FailedPrecondition]: "refused",
  [Code.ResourceExhausted]: "too many requests",
  [Code.Unimplemented]: "this Verdict does not offer that call",
  [Code.Internal]: "Verdict failed",
};

/** Turns any error into a CliError with a readable message and the matching exit code. */
export function toCliError(error: unknown, url: string): CliError {
  if (error instanceof CliError) return error;
  if (error instanceof ConnectError) {
    const hint = HINT[error.code] ?? `error (${Code[error.code]})`;
    const detail = error.rawMessage;
    let message = detail && detail !== hint ? `${hint}: ${detail}` : hint;
    if (error.code === Code.Unavailable || error.code === Code.DeadlineExceeded) message += ` (at ${url}; set --url or VERDICT_URL)`;
    if (error.code === Code.Unauthenticated) message += " (run 'verdict login', or set VERDICT_TOKEN or VERDICT_API_KEY)";
    return new CliError(message, EXIT_BY_CODE[error.code] ?? EXIT.internal);
  }
  return new CliError(error instanceof Error ? error.message : String(error), EXIT.internal);
}
