/**
 * Password hashing with argon2id. The native argon2 binding runs on libuv's thread pool, so a
 * hash or verify never blocks the event loop that serves Check.
 */
import argon2 from "argon2";
import { type FairGateOptions, GateFullError, createFairGate } from "./fair-gate.js";

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

/**
 * Hashes and verifies passwords; verification of an unknown user costs the same as of a known one.
 * `source` names who asks (a client address): argon2 slots are shared out in turn between sources.
 */
export interface PasswordHasher {
  hash(password: string, source?: string): Promise<string>;
  /** Verifies against `hash`, or against a dummy hash when `hash` is undefined (always false). */
  verify(hash: string | undefined, password: string, source?: string): Promise<boolean>;
}

/** Thrown when more password operations are waiting than the hasher queues. */
export class PasswordBusyError extends Error {
  constructor() {
    super("too many password checks in progress; try again shortly");
    this.name = "PasswordBusyError";
  }
}

/** How many argon2 operations run at once and how many may wait, in all and per source (default: as many as in all). */
export type PasswordConcurrency = Omit<FairGateOptions, "maxWaitingPerSource"> & { readonly maxWaitingPerSource?: number };

/**
 * Creates a hasher with the given argon2id cost. Operations run at most `maxConcurrent` at a time
 * (each takes ~64 MiB and several threads; unbounded, a burst of logins starves Check of CPU);
 * waiting ones are served in turn across sources, so a flood from one address delays only itself;
 * beyond `maxWaiting` queued in all, or `maxWaitingPerSource` from one source, they fail fast with
 * PasswordBusyError.
 */
export function createPasswordHasher(
  cost: PasswordCost = DEFAULT_PASSWORD_COST,
  concurrency: PasswordConcurrency = { maxConcurrent: 1, maxWaiting: 256, maxWaitingPerSource: 16 },
): PasswordHasher {
  const options = { type: argon2.argon2id as 2, memoryCost: cost.memoryCost, timeCost: cost.timeCost, parallelism: cost.parallelism };
  let dummy: Promise<string> | undefined;
  const gate = createFairGate({ ...concurrency, maxWaitingPerSource: concurrency.maxWaitingPerSource ?? concurrency.maxWaiting });
  const limited = <T>(source: string, work: () => Promise<T>): Promise<T> =>
    gate.run(source, work).catch((e: unknown) => {
      throw e instanceof GateFullError ? new PasswordBusyError() : e;
    });
  return {
    hash: (password, source = "") => limited(source, () => argon2.hash(password, options)),
    async verify(hash, password, source = "") {
      if (password.length > MAX_PASSWORD_LENGTH) password = password.slice(0, MAX_PASSWORD_LENGTH);
      if (hash === undefined) {
        dummy ??= argon2.hash("verdict-dummy-password", options);
        const dummyHash = await dummy;
        await limited(source, () => argon2.verify(dummyHash, password)).catch((e) => {
          if (e instanceof PasswordBusyError) throw e;
        });
        return false;
      }
      return limited(source, () => argon2.verify(hash, password)).catch((e) => {
        if (e instanceof PasswordBusyError) throw e;
        return false;
      });
    },
  };
}
