/**
 * Small validators shared by the sections of the rules file: each names the entry it checks and
 * says what was expected and what was found.
 */

/** Reports an unusable entry; never returns. */
export type Fail = (where: string, reason: string) => never;

const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;

/** The value as a mapping, or a failure naming `where`. */
export function mapping(value: unknown, where: string, fail: Fail): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    fail(where, `must be a mapping, got ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

/** Fails on the first key of `value` that is not in `allowed`. */
export function onlyKeys(value: Record<string, unknown>, allowed: readonly string[], where: string, fail: Fail): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) fail(where, `unknown key ${JSON.stringify(key)} (expected one of ${allowed.join(", ")})`);
  }
}

/** A short description of a value for error messages. */
export function describe(value: unknown): string {
  if (value === null || value === undefined) return "nothing";
  if (Array.isArray(value)) return "a list";
  return typeof value === "object" ? "a mapping" : `${typeof value} ${JSON.stringify(value)}`;
}

/** A non-empty string, or undefined when absent. */
export function optionalString(value: unknown, where: string, fail: Fail): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value.length === 0) fail(where, `must be a non-empty string, got ${describe(value)}`);
  return value as string;
}

/** A lower-case HTTP header name, or `fallback` when absent. */
export function headerName(value: unknown, fallback: string, where: string, fail: Fail): string {
  const name = optionalString(value, where, fail) ?? fallback;
  if (!HEADER_NAME.test(name)) {
    fail(where, `${JSON.stringify(name)} is not a lower-case HTTP header name (Envoy sends header names in lower case)`);
  }
  return name;
}
