/**
 * Postgres error translation: every driver error leaves the store as a StoreError with a stable
 * code (or a plain Error for programming errors), never carrying query parameters or row contents.
 */
import { StoreError } from "./store.js";

/** Messages for constraint violations, by constraint name, built by each writer from its input. */
export type ConstraintMessages = Readonly<Record<string, string>>;

const CONNECTION_ERROR_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "EAI_AGAIN",
]);

const CONNECTION_ERROR_MESSAGES =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|Query read timeout|Client was closed and is not queryable|Cannot use a pool after calling end|Client has encountered a connection error|PGlite is closed/i;

/**
 * Turns a driver error into a StoreError (or a plain Error for programming errors) whose message
 * and cause carry no query parameters or row contents: PGlite errors hold the parameters and
 * Postgres constraint errors hold the row in `detail`, either of which may include a hash.
 * `unique` and `missing` name the messages for unique and foreign-key violations by constraint.
 */
export function translateError(err: unknown, unique: ConstraintMessages, missing: ConstraintMessages): Error {
  if (err instanceof StoreError) return err;
  const e = (typeof err === "object" && err !== null ? err : {}) as {
    code?: unknown;
    constraint?: unknown;
    message?: unknown;
  };
  const code = typeof e.code === "string" ? e.code : "";
  const constraint = typeof e.constraint === "string" ? e.constraint : "";
  const message = typeof e.message === "string" ? e.message : String(err);
  if (code === "23505") {
    return new StoreError("already_exists", unique[constraint] ?? `already exists (${constraint || "unique key"})`);
  }
  if (code === "23503") {
    return new StoreError("not_found", missing[constraint] ?? `referenced entity not found (${constraint || "foreign key"})`);
  }
  if (code === "22021" || code === "22P05") {
    return new StoreError("invalid_argument", "a text value holds a character the database cannot store (NUL or invalid UTF-8)");
  }
  if (code === "22003") {
    return new StoreError("invalid_argument", "a number lies outside the range the database can store");
  }
  if (code === "40001" || code === "40P01") {
    return new StoreError("conflict", "concurrent update, try again");
  }
  if (
    CONNECTION_ERROR_CODES.has(code) ||
    code.startsWith("08") ||
    code === "57P01" ||
    code === "57P02" ||
    code === "57P03" ||
    code === "53300" ||
    (code === "" && CONNECTION_ERROR_MESSAGES.test(message))
  ) {
    return new StoreError("unavailable", `database unavailable: ${message}`, { cause: err });
  }
  return new Error(code ? `database error ${code}: ${message}` : `database error: ${message}`);
}
