import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type AppliedLimits,
  CREDENTIAL_WORDS,
  type RateLimitSpec,
  STANDARD_WINDOWS,
  combineLimits,
  credentialIdle,
  rateLimitSpecProblem,
  takeUnits,
} from "../../src/core/rate-limit.js";
import { SLOTS, windowShape } from "../../src/core/rate-window.js";

const MIN = 60_000;
const SLOT = MIN / SLOTS;
const T0 = Date.UTC(2027, 0, 1); // a whole slot of both windows (a whole number of hours after the origin)
const spec = (perMinute: number, perHour = 0, burst = 0, shadow = false): RateLimitSpec => ({ perMinute, perHour, burst, shadow });
const limits = (perMinute: number, perHour = 0, burst = 0): AppliedLimits => combineLimits([], spec(perMinute, perHour, burst));

/** A credential's counters and a virtual clock. */
function counter(l: AppliedLimits) {
  const state = new Uint32Array(CREDENTIAL_WORDS);
  return (at: number, cost = 1) => takeUnits(state, 0, STANDARD_WINDOWS, l, cost, at);
}

describe("rate limits: the sliding window", () => {
  it("admits exactly the limit, then answers with the time until the first units leave the window", () => {
    const take = counter(limits(10));
    for (let i = 0; i < 10; i++) expect(take(T0 + i)).toMatchObject({ allowed: true, remaining: 9 - i });
    const denied = take(T0 + 500);
    expect(denied).toMatchObject({ allowed: false, remaining: 0, bound: { limit: 10, window: "minute", scope: "default" } });
    // Units of slot 0 count until slot 21 begins: 63 s after T0.
    expect(denied.resetMs).toBe(MIN + SLOT - 500);
    expect(take(T0 + MIN + SLOT - 1).allowed).toBe(false);
    expect(take(T0 + MIN + SLOT).allowed).toBe(true);
  });

  it("has no double burst at a window edge: the limit spent at the end of a minute stays spent after it", () => {
    const take = counter(limits(10));
    for (let i = 0; i < 10; i++) expect(take(T0 + MIN - 1).allowed).toBe(true);
    expect(take(T0 + MIN).allowed).toBe(false);
    expect(take(T0 + MIN + 1).allowed).toBe(false);
    expect(take(T0 + 2 * MIN - 1).allowed).toBe(false);
    // Admitted in slot 19 (57-60 s): they leave when slot 40 begins, at 120 s.
    expect(take(T0 + 2 * MIN).allowed).toBe(true);
  });

  it("never admits more than the limit in any interval of one period, for any arrivals and costs", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 30 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 4 })), { minLength: 1, maxLength: 300 }),
        (limit, steps) => {
          const take = counter(limits(limit));
          let t = T0;
          const admitted: Array<[number, number]> = [];
          for (const [gap, cost] of steps) {
            t += gap;
            if (take(t, cost).allowed && cost > 0) admitted.push([t, cost]);
          }
          for (const [end] of admitted) {
            const inWindow = admitted.filter(([at]) => at > end - MIN && at <= end).reduce((n, [, c]) => n + c, 0);
            if (inWindow > limit) return false;
          }
          return true;
        },
      ),
    );
  });

  it("gives a client asking at three times the limit the limit in its first minute, then the limit every period and a slot", () => {
    const take = counter(limits(1000));
    const admittedAt: number[] = [];
    for (let t = T0 + 7; t < T0 + 10 * MIN; t += 20) if (take(t).allowed) admittedAt.push(t);
    expect(admittedAt.filter((t) => t < T0 + MIN)).toHaveLength(1000);
    for (let start = T0; start + MIN + 2 * SLOT <= T0 + 10 * MIN; start += 1_000) {
      expect(admittedAt.filter((t) => t >= start && t < start + MIN).length).toBeLessThanOrEqual(1000);
      expect(admittedAt.filter((t) => t >= start && t < start + MIN + 2 * SLOT).length).toBeGreaterThanOrEqual(1000);
    }
    // On average at least SLOTS / (SLOTS + 1) of the limit per minute.
    expect(admittedAt.length).toBeGreaterThanOrEqual(Math.floor((10 * 1000 * SLOTS) / (SLOTS + 1)));
  });

  it("caps what one slot admits with a burst, and reports the next slot", () => {
    const take = counter(limits(60, 0, 5));
    for (let i = 0; i < 5; i++) expect(take(T0 + 100).allowed).toBe(true);
    const denied = take(T0 + 100);
    expect(denied).toMatchObject({ allowed: false, bound: { window: "burst", limit: 5 }, remaining: 0, resetMs: SLOT - 100 });
    for (let i = 0; i < 5; i++) expect(take(T0 + SLOT).allowed).toBe(true);
    expect(take(T0 + SLOT).allowed).toBe(false);
  });

  it("asks without consuming at cost 0, and takes several units at once at cost above 1", () => {
    const take = counter(limits(10));
    expect(take(T0, 0)).toMatchObject({ allowed: true, remaining: 10 });
    expect(take(T0, 4)).toMatchObject({ allowed: true, remaining: 6 });
    expect(take(T0, 7)).toMatchObject({ allowed: false, remaining: 6 });
    expect(take(T0, 6)).toMatchObject({ allowed: true, remaining: 0 });
    // Exhausted: a question that consumes nothing is still answered, with nothing left.
    expect(take(T0 + 1, 0)).toMatchObject({ allowed: true, remaining: 0 });
    expect(take(T0 + 1, 1).allowed).toBe(false);
    // More than the limit can never fit.
    expect(take(T0 + 10 * MIN, 11)).toMatchObject({ allowed: false, resetMs: MIN + SLOT });
  });

  it("counts the hour beside the minute and reports the window with fewer units left", () => {
    const take = counter(limits(10, 25));
    for (let m = 0; m < 2; m++) for (let i = 0; i < 10; i++) expect(take(T0 + m * 2 * MIN + i).allowed).toBe(true);
    const a = take(T0 + 4 * MIN);
    expect(a).toMatchObject({ allowed: true, remaining: 4, bound: { window: "hour", limit: 25 } });
    for (let i = 0; i < 4; i++) take(T0 + 4 * MIN + 1);
    const denied = take(T0 + 4 * MIN + 2);
    expect(denied).toMatchObject({ allowed: false, bound: { window: "hour" } });
    // The first ten (hour slot 0) leave the hour when its slot 21 begins: 63 minutes after T0.
    expect(denied.resetMs).toBe(63 * MIN - 4 * MIN - 2);
  });

  it("drops what left the window: a credential idle for a period and a slot has nothing counted", () => {
    const state = new Uint32Array(CREDENTIAL_WORDS);
    takeUnits(state, 0, STANDARD_WINDOWS, limits(10, 100), 3, T0);
    expect(credentialIdle(state, 0, STANDARD_WINDOWS, T0 + 62 * MIN)).toBe(false);
    expect(credentialIdle(state, 0, STANDARD_WINDOWS, T0 + 63 * MIN)).toBe(true);
    expect(takeUnits(state, 0, STANDARD_WINDOWS, limits(10, 100), 0, T0 + 63 * MIN)).toMatchObject({ remaining: 10 });
  });

  it("keeps the same semantics in shortened windows", () => {
    const windows = { minute: windowShape(6_000), hour: windowShape(360_000) };
    const state = new Uint32Array(CREDENTIAL_WORDS);
    const l = limits(100);
    let admitted = 0;
    for (let t = T0; t < T0 + 6_000; t += 20) if (takeUnits(state, 0, windows, l, 1, t).allowed) admitted++;
    expect(admitted).toBe(100);
    expect(takeUnits(state, 0, windows, l, 1, T0 + 6_300).allowed).toBe(true);
  });
});

describe("rate limits: combining scopes", () => {
  it("applies the defaults when no scope is configured", () => {
    expect(combineLimits([], spec(1000, 10000))).toMatchObject({ minute: { limit: 1000, scope: "default" }, hour: { limit: 10000, scope: "default" } });
    expect(combineLimits([], spec(0, 0))).toEqual({});
  });

  it("replaces the defaults by the configured scopes, the tightest winning per window", () => {
    const l = combineLimits(
      [
        { scope: "tenant", spec: spec(10_000, 100_000) },
        { scope: "role", spec: spec(500, 0, 20) },
        { scope: "key", spec: spec(0, 50_000) },
      ],
      spec(1000, 10_000),
    );
    expect(l).toMatchObject({ minute: { limit: 500, scope: "role" }, hour: { limit: 50_000, scope: "key" }, burst: { limit: 20, scope: "role" } });
  });

  it("lets a scope switch limits off (an internal batch key: none)", () => {
    expect(combineLimits([{ scope: "key", spec: spec(0, 0) }], spec(1000, 10_000))).toEqual({});
  });

  it("keeps shadow limits apart, and only where tighter than the enforced ones", () => {
    const l = combineLimits([{ scope: "tenant", spec: spec(100, 100_000, 0, true) }], spec(1000, 10_000));
    expect(l).toMatchObject({ minute: { limit: 1000, scope: "default" }, shadowMinute: { limit: 100, scope: "tenant" } });
    expect(l.shadowHour).toBeUndefined();
    const take = counter(l);
    for (let i = 0; i < 100; i++) expect(take(T0).shadow).toBeUndefined();
    expect(take(T0)).toMatchObject({ allowed: true, shadow: { limit: 100, window: "minute", scope: "tenant" }, remaining: 899 });
  });

  it.each([
    [spec(-1), "per_minute must be a whole number"],
    [spec(1.5), "per_minute must be a whole number"],
    [spec(2_000_000_000), "at most"],
    [spec(0, 100, 5), "burst needs a per_minute limit"],
    [spec(10, 100, 11), "must not exceed per_minute"],
    [spec(1000, 10), "per_minute (1000) must not exceed per_hour"],
  ])("refuses %o", (s, message) => {
    expect(rateLimitSpecProblem(s)).toContain(message);
  });

  it("accepts sensible specs", () => {
    for (const s of [spec(0, 0), spec(1000, 10_000), spec(10, 0, 5), spec(0, 100), spec(1000, 10_000, 0, true)]) expect(rateLimitSpecProblem(s)).toBeUndefined();
  });
});
