import { describe, expect, it } from "vitest";
import { createMemoryAttemptCounter } from "../../src/authn/attempt-counter.js";
import { createLoginLimiter } from "../../src/authn/login-limiter.js";
import { type TokenAttempt, type TokenRefused, createTokenLimiter } from "../../src/authn/token-limiter.js";

const WINDOW = 60_000;
const allowed = (a: TokenAttempt | TokenRefused): TokenAttempt => {
  if (!a.allowed) throw new Error(`refused, retry after ${a.retryAfterMs} ms`);
  return a;
};

describe("token limiter", () => {
  it("refuses an address past its failures until its window ends; other addresses have their own", async () => {
    const l = createTokenLimiter({ maxFailuresPerAddress: 3, windowMs: WINDOW });
    for (let i = 0; i < 3; i++) allowed(await l.reserve("10.0.0.1", 1000 + i));
    expect(await l.reserve("10.0.0.1", 21_000)).toEqual({ allowed: false, retryAfterMs: 40_000 });
    allowed(await l.reserve("10.0.0.2", 21_000));
    allowed(await l.reserve("10.0.0.1", 61_000));
  });

  it("gives the attempt back for a good secret, or when none was judged", async () => {
    const l = createTokenLimiter({ maxFailuresPerAddress: 2, windowMs: WINDOW });
    for (let i = 0; i < 10; i++) await allowed(await l.reserve("10.0.0.1", i)).succeeded();
    await allowed(await l.reserve("10.0.0.1", 10)).abandoned();
    allowed(await l.reserve("10.0.0.1", 11));
    allowed(await l.reserve("10.0.0.1", 12));
    expect((await l.reserve("10.0.0.1", 13)).allowed).toBe(false);
  });

  it("counts apart from failed logins on a shared counter", async () => {
    const counter = createMemoryAttemptCounter();
    const tokens = createTokenLimiter({ maxFailuresPerAddress: 1, windowMs: WINDOW, counter });
    const logins = createLoginLimiter({ maxFailures: 5, maxFailuresPerAddress: 1, windowMs: WINDOW, counter });
    allowed(await tokens.reserve("10.0.0.1", 0));
    expect((await tokens.reserve("10.0.0.1", 1)).allowed).toBe(false);
    expect((await logins.reserve("alice", "10.0.0.1", 1)).allowed).toBe(true);
  });

  it("refuses invalid options", () => {
    expect(() => createTokenLimiter({ maxFailuresPerAddress: 0, windowMs: WINDOW })).toThrow(/maxFailuresPerAddress/);
    expect(() => createTokenLimiter({ maxFailuresPerAddress: 1, windowMs: 0 })).toThrow(/windowMs/);
  });
});
