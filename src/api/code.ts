/**
 * The status codes clients see, written once: one enum whose values are the gRPC numbers (as
 * connect-es's code.ts), used for gRPC, Connect and google.rpc.Status alike. errors.ts maps the
 * API's errors to it.
 */

/** gRPC status codes (also google.rpc.Code and Connect's codes, which share the numbers). */
export enum Code {
  Ok = 0,
  Canceled = 1,
  Unknown = 2,
  InvalidArgument = 3,
  DeadlineExceeded = 4,
  NotFound = 5,
  AlreadyExists = 6,
  PermissionDenied = 7,
  ResourceExhausted = 8,
  FailedPrecondition = 9,
  Aborted = 10,
  OutOfRange = 11,
  Unimplemented = 12,
  Internal = 13,
  Unavailable = 14,
  DataLoss = 15,
  Unauthenticated = 16,
}
