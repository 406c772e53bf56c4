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

/** Thrown when more password operations are waiting than the hasher queues. */
export class PasswordBusyError extends Error {
  constructor() {
    super("too many password checks in progress; try again shortly");
    this.name = "PasswordBusyError";
  }
}

/** How many argon2 operations run at once and how many may wait. */
export interface PasswordConcurrency {
  readonly maxConcurrent: number;
  readonly maxWaiting: number;
}

/**
 * Creates a hasher with the given argon2id cost. Operations run at most `maxConcurrent` at a time
 * (each takes ~64 MiB and several threads; unbounded, a burst of logins starves Check of CPU), and
 * beyond `maxWaiting` queued ones they fail fast with PasswordBusyError.
 */
export function createPasswordHasher(
  cost: PasswordCost = DEFAULT_PASSWORD_COST,
  concurrency: PasswordConcurrency = { maxConcurrent: 1, maxWaiting: 256 },
): PasswordHasher {
  const options = { type: argon2.argon2id as 2, memoryCost: cost.memoryCost, timeCost: cost.timeCost, parallelism: cost.parallelism };
  let dummy: Promise<string> | undefined;
  let running = 0;
  const waiting: Array<() => void> = [];
  const limited = async <T>(work: () => Promise<T>): Promise<T> => {
    if (running >= concurrency.maxConcurrent) {
      if (waiting.length >= concurrency.maxWaiting) throw new PasswordBusyError();
      await new Promise<void>((resolve) => waiting.push(resolve));
    } else {
      running++;
    }
    try {
      return await work();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
  return {
    hash: (password) => limited(() => argon2.hash(password, options)),
    async verify(hash, password) {
      if (password.length > MAX_PASSWORD_LENGTH) password = password.slice(0, MAX_PASSWORD_LENGTH);
      if (hash === undefined) {
        dummy ??= argon2.hash("verdict-dummy-password", options);
        const dummyHash = await dummy;
        await limited(() => argon2.verify(dummyHash, password)).catch((e) => {
          if (e instanceof PasswordBusyError) throw e;
        });
        return false;
      }
      return limited(() => argon2.verify(hash, password)).catch((e) => {
        if (e instanceof PasswordBusyError) throw e;
        return false;
      });
    },
  };
}
