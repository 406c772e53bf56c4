/**
 * Password hashing with argon2id. The native argon2 binding runs on libuv's thread pool, so a
 * hash or verify never blocks the event loop that serves Check.
 */
import argon2 from "argon2";

/** Shortest password accepted at creation or change. */
export const MIN_PASSWORD_LENGTH = 12;
/** Longest password accepted (argon2 takes any length; this bounds the work per request). */
export const MAX_PASSWORD_LENGTH = 1024;

/** Why a new password is unacceptable, or undefined. */
export function passwordProblem(password: string): string | undefined {
  if (password.length < MIN_PASSWORD_LENGTH) return `password must be at least ${MIN_PASSWORD_LENGTH} characters`;
  if (password.length > MAX_PASSWORD_LENGTH) return `password must be at most ${MAX_PASSWORD_LENGTH} characters`;
  return undefined;
}

/** argon2id cost parameters (the library defaults: 64 MiB, 3 passes, 4 lanes). */
export interface PasswordCost {
  readonly memoryCost: number;
  readonly timeCost: number;
  readonly parallelism: number;
}

/** The default cost. Tests may pass a cheaper one. */
export const DEFAULT_PASSWORD_COST: PasswordCost = { memoryCost: 65536, timeCost: 3, parallelism: 4 };

/** Hashes and verifies passwords; verification of an unknown user costs the same as of a known one. */
export interface PasswordHasher {
  hash(password: string): Promise<string>;
  /** Verifies against `hash`, or against a dummy hash when `hash` is undefined (always false). */
  verify(hash: string | undefined, password: string): Promise<boolean>;
}

/** Creates a hasher with the given argon2id cost. */
export function createPasswordHasher(cost: PasswordCost = DEFAULT_PASSWORD_COST): PasswordHasher {
  const options = { type: argon2.argon2id as 2, ...cost };
  let dummy: Promise<string> | undefined;
  return {
    hash: (password) => argon2.hash(password, options),
    async verify(hash, password) {
      if (password.length > MAX_PASSWORD_LENGTH) password = password.slice(0, MAX_PASSWORD_LENGTH);
      if (hash === undefined) {
        dummy ??= argon2.hash("verdict-dummy-password", options);
        await argon2.verify(await dummy, password).catch(() => false);
        return false;
      }
      try {
        return await argon2.verify(hash, password);
      } catch {
        return false;
      }
    },
  };
}
