import { describe, expect, it } from "vitest";
import { type AttemptCounter, createMemoryAttemptCounter } from "../../src/authn/attempt-counter.js";
import { type LoginAttempt, type LoginLimiter, type LoginRefused, createLoginLimiter } from "../../src/authn/login-limiter.js";

const WINDOW = 60_000;
const limiter = (counter?: AttemptCounter, maxFailuresPerAddress = 10): LoginLimiter =>
  createLoginLimiter({ maxFailures: 3, maxFailuresPerAddress, windowMs: WINDOW, counter });
const allowed = (a: LoginAttempt | LoginRefused): LoginAttempt => {
  if (!a.allowed) throw new Error(`refused, retry after ${a.retryAfterMs} ms`);
  return a;
};

describe("memory attempt counter", () => {
  it("counts up to the limit in a window, then refuses until the window ends", async () => {
    const c = createMemoryAttemptCounter();
    expect(await c.take("k", 2, 1000, 0)).toEqual({ counted: true, resetAtMs: 1000 });
    expect(await c.take("k", 2, 1000, 10)).toEqual({ counted: true, resetAtMs: 1000 });
    expect(await c.take("k", 2, 1000, 999)).toEqual({ counted: false, resetAtMs: 1000 });
    expect(await c.take("k", 2, 1000, 1000)).toEqual({ counted: true, resetAtMs: 2000 });
  });

  it("gives back and clears", async () => {
    const c = createMemoryAttemptCounter();
    await c.take("k", 1, 1000, 0);
    expect((await c.take("k", 1, 1000, 1)).counted).toBe(false);
    await c.giveBack("k", 2);
    expect((await c.take("k", 1, 1000, 3)).counted).toBe(true);
    await c.clear("k");
    expect(await c.take("k", 1, 1000, 4)).toEqual({ counted: true, resetAtMs: 1004 });
    await c.giveBack("never-seen", 5);
  });

  it("drops the window started longest ago beyond maxKeys", async () => {
    const c = createMemoryAttemptCounter(2);
    await c.take("a", 1, 1000, 0);
    await c.take("b", 1, 1000, 1);
    await c.take("c", 1, 1000, 2);
    expect((await c.take("a", 1, 1000, 3)).counted).toBe(true);
    expect((await c.take("c", 1, 1000, 3)).counted).toBe(false);
    expect(() => createMemoryAttemptCounter(0)).toThrow(/maxKeys/);
  });
});

describe("login limiter", () => {
  it("refuses the attempt after maxFailures for one username and address, with the time left", async () => {
    const l = limiter();
    for (let i = 0; i < 3; i++) allowed(await l.reserve("alice", "10.0.0.1", 1000 + i));
    expect(await l.reserve("alice", "10.0.0.1", 21_000)).toEqual({ allowed: false, retryAfterMs: 40_000 });
    // Another address, and another username, have budgets of their own.
    allowed(await l.reserve("alice", "10.0.0.2", 21_000));
    allowed(await l.reserve("bob", "10.0.0.1", 21_000));
    // The window ends.
    allowed(await l.reserve("alice", "10.0.0.1", 61_000));
  });

  it("counts every spelling of a username as one", async () => {
    const l = limiter();
    for (const name of ["alice", "Alice", "ALICE"]) allowed(await l.reserve(name, "10.0.0.1", 0));
    expect((await l.reserve("aLiCe", "10.0.0.1", 0)).allowed).toBe(false);
  });

  it("refuses an address past maxFailuresPerAddress whatever the usernames, without using up their budgets", async () => {
    const l = limiter(undefined, 4);
    for (let i = 0; i < 4; i++) allowed(await l.reserve(`user-${i}`, "10.0.0.9", 0));
    expect((await l.reserve("user-new", "10.0.0.9", 0)).allowed).toBe(false);
    expect((await l.reserve("user-0", "10.0.0.8", 0)).allowed).toBe(true);
    // After the window, user-new still has its whole budget: the refusal did not count against it.
    for (let i = 0; i < 3; i++) allowed(await l.reserve("user-new", "10.0.0.9", WINDOW));
  });

  it("a refused address creates no counts: cycling usernames cannot evict its own or others' budgets", async () => {
    const l = limiter(createMemoryAttemptCounter(10), 3);
    // alice is locked out from her address.
    for (let i = 0; i < 3; i++) allowed(await l.reserve("alice", "10.0.0.1", 0));
    // An attacker spends its address budget, then cycles fresh usernames.
    for (let i = 0; i < 3; i++) allowed(await l.reserve(`guess-${i}`, "10.0.0.66", 0));
    const later = await Promise.all(Array.from({ length: 50 }, (_, i) => l.reserve(`guess-more-${i}`, "10.0.0.66", 1)));
    expect(later.filter((a) => a.allowed)).toHaveLength(0);
    expect((await l.reserve("alice", "10.0.0.1", 2)).allowed).toBe(false);
  });

  it("reserves before the work: concurrent attempts beyond the budget are refused at once", async () => {
    const l = limiter();
    const answers = await Promise.all(Array.from({ length: 40 }, () => l.reserve("alice", "10.0.0.1", 0)));
    expect(answers.filter((a) => a.allowed)).toHaveLength(3);
  });

  it("clears the username's budget on success and gives the attempt back to the address", async () => {
    const l = limiter(undefined, 3);
    allowed(await l.reserve("alice", "10.0.0.1", 0));
    allowed(await l.reserve("alice", "10.0.0.1", 0));
    await allowed(await l.reserve("alice", "10.0.0.1", 0)).succeeded();
    // The address has 2 failures counted, alice none.
    allowed(await l.reserve("bob", "10.0.0.1", 0));
    expect((await l.reserve("carol", "10.0.0.1", 0)).allowed).toBe(false);
  });

  it("gives an abandoned attempt back to both budgets", async () => {
    const l = limiter(undefined, 3);
    for (let i = 0; i < 10; i++) await allowed(await l.reserve("alice", "10.0.0.1", 0)).abandoned();
    for (let i = 0; i < 3; i++) allowed(await l.reserve("alice", "10.0.0.1", 0));
  });

  it("counts through the counter it is given", async () => {
    const keys: string[] = [];
    const memory = createMemoryAttemptCounter();
    const counter: AttemptCounter = {
      take: (key, ...rest) => (keys.push(key), memory.take(key, ...rest)),
      giveBack: (key, nowMs) => memory.giveBack(key, nowMs),
      clear: (key) => memory.clear(key),
    };
    allowed(await limiter(counter).reserve("Alice", "10.0.0.1", 0));
    // The address is taken first (see "a refused address creates no counts").
    expect(keys).toEqual(["address\u000010.0.0.1", "user\u0000alice\u000010.0.0.1"]);
  });

  it("refuses invalid options", () => {
    expect(() => createLoginLimiter({ maxFailures: 0, maxFailuresPerAddress: 1, windowMs: 1 })).toThrow(/maxFailures/);
    expect(() => createLoginLimiter({ maxFailures: 1, maxFailuresPerAddress: 1.5, windowMs: 1 })).toThrow(/maxFailuresPerAddress/);
    expect(() => createLoginLimiter({ maxFailures: 1, maxFailuresPerAddress: 1, windowMs: 0 })).toThrow(/windowMs/);
  });
});
