/**
 * API errors with stable codes, and their mapping to gRPC and Connect status codes: the one place
 * where internal failures become what a client sees. Clients get a clear message; the cause goes
 * to the log; no secret reaches either.
 */
import { status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";
import { Metadata } from "@grpc/grpc-js";
import { Code, ConnectError } from "@connectrpc/connect";
import { PasswordBusyError } from "../authn/password.js";
import { GrantSyntaxError } from "../core/grant.js";
import { PatternError } from "../core/patterns.js";
import { StoreError } from "../store/store.js";

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

const GRPC: Record<ApiErrorCode, GrpcStatus> = {
  invalid_argument: GrpcStatus.INVALID_ARGUMENT,
  not_found: GrpcStatus.NOT_FOUND,
  already_exists: GrpcStatus.ALREADY_EXISTS,
  permission_denied: GrpcStatus.PERMISSION_DENIED,
  unauthenticated: GrpcStatus.UNAUTHENTICATED,
  failed_precondition: GrpcStatus.FAILED_PRECONDITION,
  resource_exhausted: GrpcStatus.RESOURCE_EXHAUSTED,
  unavailable: GrpcStatus.UNAVAILABLE,
  internal: GrpcStatus.INTERNAL,
};

const CONNECT: Record<ApiErrorCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  permission_denied: Code.PermissionDenied,
  unauthenticated: Code.Unauthenticated,
  failed_precondition: Code.FailedPrecondition,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  internal: Code.Internal,
};

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
  return new ApiError("invalid_argument", `malformed ${typeName} message`, { cause });
}

/** The gRPC form of an error. */
export function toGrpcError(error: ApiError): Partial<ServiceError> {
  return { code: GRPC[error.code], details: error.message, metadata: new Metadata() };
}

/** The Connect form of an error. */
export function toConnectError(error: ApiError): ConnectError {
  return new ConnectError(error.message, CONNECT[error.code]);
}
