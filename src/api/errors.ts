/**
 * API errors with stable codes, and their mapping to gRPC and Connect status codes: the one place
 * where internal failures become what a client sees. Clients get a clear message; the cause goes
 * to the log; no secret reaches either.
 */
import { Metadata, type ServiceError } from "@grpc/grpc-js";
import { ConnectError } from "@connectrpc/connect";
import { PasswordBusyError } from "../authn/password.js";
import { GrantSyntaxError } from "../core/grant.js";
import { PatternError } from "../core/patterns.js";
import { StoreError } from "../store/store.js";
import { Code } from "./code.js";

/** Stable error codes of the API. */
export type ApiErrorCode =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "permission_denied"
  | "unauthenticated"
  | "failed_precondition"
  | "resource_exhausted"
  | "unavailable"
  | "internal";

/** An error meant for the client: its message is safe to show. */
export class ApiError extends Error {
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "ApiError";
  }
}

/** The status code (gRPC, Connect) of an API error code: the one mapping. */
export function codeOf(code: ApiErrorCode): Code {
  switch (code) {
    case "invalid_argument":
      return Code.InvalidArgument;
    case "not_found":
      return Code.NotFound;
    case "already_exists":
      return Code.AlreadyExists;
    case "permission_denied":
      return Code.PermissionDenied;
    case "unauthenticated":
      return Code.Unauthenticated;
    case "failed_precondition":
      return Code.FailedPrecondition;
    case "resource_exhausted":
      return Code.ResourceExhausted;
    case "unavailable":
      return Code.Unavailable;
    case "internal":
      return Code.Internal;
  }
}

/** Turns any thrown value into an ApiError; unknown errors become a generic internal error. */
export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof PatternError || error instanceof GrantSyntaxError) return new ApiError("invalid_argument", error.message);
  if (error instanceof PasswordBusyError) return new ApiError("resource_exhausted", error.message);
  if (error instanceof StoreError) {
    if (error.code === "unavailable") return new ApiError("unavailable", "the policy store is unavailable; try again shortly", { cause: error });
    if (error.code === "conflict") return new ApiError("failed_precondition", error.message);
    return new ApiError(error.code, error.message);
  }
  return new ApiError("internal", "internal error", { cause: error });
}

/** The error for a request message that does not decode (the decoder's complaint is kept as the cause). */
export function malformedRequest(typeName: string, cause: unknown): ApiError {
  // The decoder's complaint ("truncated field", "premature EOF") names no content of the message; it
  // is what the HTTP port says too (server/connect-errors.ts). Bounded, in case a decoder says more.
  const reason = cause instanceof Error && cause.message !== "" ? cause.message.slice(0, MAX_REASON) : "not decodable";
  return new ApiError("invalid_argument", `malformed ${typeName} message: ${reason}`, { cause });
}

/** Longest decoder complaint put in a malformed-message error. */
const MAX_REASON = 200;

/** The gRPC form of an error. */
export function toGrpcError(error: ApiError): Partial<ServiceError> {
  return { code: codeOf(error.code) as number, details: error.message, metadata: new Metadata() };
}

/** The Connect form of an error. */
export function toConnectError(error: ApiError): ConnectError {
  // connect-es's Code has the same numbers.
  return new ConnectError(error.message, codeOf(error.code) as number);
}
