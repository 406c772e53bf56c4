import { describe, expect, it } from "vitest";
import { PasswordBusyError, createPasswordHasher, passwordProblem } from "../../src/authn/password.js";

const CHEAP = { memoryCost: 1024, timeCost: 1, parallelism: 1 };

describe("password hasher", () => {
  it("hashes with argon2id and verifies only the right password", async () => {
    const h = createPasswordHasher(CHEAP);
    const hash = await h.hash("correct horse battery");
    expect(hash).toMatch(/^\$argon2id\$/);
    expect(hash).not.toContain("correct horse battery");
    expect(await h.verify(hash, "correct horse battery")).toBe(true);
    expect(await h.verify(hash, "correct horse batterz")).toBe(false);
    expect(await h.verify(undefined, "correct horse battery")).toBe(false);
    expect(await h.verify("not-a-hash", "x")).toBe(false);
  });

  it("refuses short passwords at creation", () => {
    expect(passwordProblem("short")).toContain("at least 12");
    expect(passwordProblem("twelve chars")).toBeUndefined();
  });

  // How many run at once is the fair gate's promise, asserted by counting in fair-gate.test.ts
  // (a timing comparison here only measured how busy the machine was).
  it("queues beyond maxConcurrent, fails fast beyond the queue, and answers each queued check", async () => {
    const h = createPasswordHasher({ memoryCost: 8192, timeCost: 2, parallelism: 1 }, { maxConcurrent: 1, maxWaiting: 2 });
    const hash = await h.hash("correct horse battery");
    const runs = [h.verify(hash, "correct horse battery"), h.verify(hash, "x"), h.verify(hash, "y")];
    await expect(h.verify(hash, "z")).rejects.toBeInstanceOf(PasswordBusyError);
    await expect(h.hash("another password")).rejects.toBeInstanceOf(PasswordBusyError);
    expect(await Promise.all(runs)).toEqual([true, false, false]);
    // the queue drained: the next one is accepted again
    expect(await h.verify(hash, "correct horse battery")).toBe(true);
  });
});
