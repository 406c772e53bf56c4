import { afterEach, describe, expect, it } from "vitest";
import type { PrincipalView } from "../../src/core/decision.js";
import { type RateLimitSpec, combineLimits } from "../../src/core/rate-limit.js";
import { RateLimiter } from "../../src/engine/rate-limiter.js";

const T0 = Date.UTC(2027, 0, 1);
const MIN = 60_000;
const spec = (perMinute: number, perHour = 0, burst = 0, shadow = false): RateLimitSpec => ({ perMinute, perHour, burst, shadow });
const key = (keyId: string, roles: string[] = [], tenant = "acme"): PrincipalView =>
  Object.freeze({ kind: "api_key", userId: "u1", username: "alice", keyId, tenant, roles });
const user = (userId: string, roles: string[] = [], tenant = "acme"): PrincipalView =>
  Object.freeze({ kind: "user", userId, username: userId, keyId: "", tenant, roles });

const limiters: RateLimiter[] = [];
function limiter(defaults = spec(3, 10), maxTracked = 1000, onEvicted?: () => void): RateLimiter {
  const l = new RateLimiter({ defaults, maxTracked, onEvicted, sweepIntervalMs: 3_600_000 });
  limiters.push(l);
  return l;
}
afterEach(() => {
  for (const l of limiters.splice(0)) l.close();
});

function admitted(l: RateLimiter, p: PrincipalView, n: number, at = T0): number {
  let ok = 0;
  for (let i = 0; i < n; i++) if (l.take(p, 1, at).allowed) ok++;
  return ok;
}

describe("rate limiter", () => {
  it("counts each credential apart: API keys by key id, token users by user id", () => {
    const l = limiter();
    expect(admitted(l, key("k1"), 5)).toBe(3);
    expect(admitted(l, key("k2"), 5)).toBe(3);
    expect(admitted(l, user("u1"), 5)).toBe(3);
    // The same key in another tenant is the same credential.
    expect(admitted(l, key("k1", [], "other"), 1)).toBe(0);
    expect(l.sizes()).toEqual({ keys: 2, users: 1, routes: 0 });
  });

  it("resolves limits per key, role and tenant, the tightest winning and the answer naming it", () => {
    const l = limiter(spec(1000, 10_000));
    l.setLimit("tenant", "paid", spec(10_000, 100_000));
    l.setLimit("role", "batch", spec(5, 0));
    l.setLimit("key", "internal", spec(0, 0));
    expect(l.take(key("a", [], "paid"), 1, T0)).toMatchObject({ allowed: true, bound: { scope: "tenant", limit: 10_000 }, remaining: 9_999 });
    expect(l.take(key("b", ["READ"], "acme"), 1, T0)).toMatchObject({ bound: { scope: "default", limit: 1000 } });
    const batch = key("c", ["batch", "READ"], "paid");
    expect(admitted(l, batch, 10)).toBe(5);
    expect(l.take(batch, 1, T0)).toMatchObject({ allowed: false, bound: { scope: "role", limit: 5, window: "minute" } });
    // The internal key has no limit of its own: "none" is the loosest, so only its tenant's apply.
    const none = l.take(key("internal", [], "acme"), 1, T0);
    expect(none.allowed).toBe(true);
    expect(none.bound).toBeUndefined();
    expect(l.take(key("internal", [], "paid"), 1, T0)).toMatchObject({ bound: { scope: "tenant" } });
  });

  it("follows limit changes at once, keeping what was counted", () => {
    const l = limiter(spec(10, 0));
    expect(admitted(l, key("k"), 4)).toBe(4);
    l.setLimit("key", "k", spec(5, 0));
    expect(admitted(l, key("k"), 4)).toBe(1);
    l.setLimit("key", "k", undefined);
    expect(admitted(l, key("k"), 10)).toBe(5);
    l.replaceLimits([{ scope: "tenant", id: "acme", spec: spec(0, 0) }]);
    expect(admitted(l, key("k"), 10)).toBe(10);
  });

  it("reports shadow limits without denying", () => {
    const l = limiter(spec(10, 0));
    l.setLimit("role", "trial", spec(2, 0, 0, true));
    const p = key("k", ["trial"]);
    expect(l.take(p, 1, T0).shadow).toBeUndefined();
    expect(l.take(p, 1, T0).shadow).toBeUndefined();
    expect(l.take(p, 1, T0)).toMatchObject({ allowed: true, shadow: { scope: "role", limit: 2 }, bound: { scope: "default" } });
  });

  it("counts a credential on a route apart and admits only when both admit", () => {
    const l = limiter(spec(5, 0));
    const route = { id: "POST /api/chat/*", limits: combineLimits([{ scope: "route", spec: spec(2, 0) }], spec(0, 0)) };
    const p = key("k");
    expect(l.take(p, 1, T0, route)).toMatchObject({ allowed: true, bound: { scope: "route" }, remaining: 1 });
    expect(l.take(p, 1, T0, route).allowed).toBe(true);
    expect(l.take(p, 1, T0, route)).toMatchObject({ allowed: false, bound: { scope: "route" } });
    // The denied route request consumed nothing of the credential's own budget.
    expect(admitted(l, p, 5)).toBe(3);
    expect(l.take(p, 1, T0, route)).toMatchObject({ allowed: false, bound: { scope: "default" } });
    expect(l.sizes().routes).toBe(1);
  });

  it("drops idle counters and keeps at most maxTracked, counting evictions", () => {
    let evicted = 0;
    const l = limiter(spec(3, 10), 100, () => evicted++);
    for (let i = 0; i < 150; i++) l.take(key(`k${i}`), 1, T0);
    expect(l.sizes().keys).toBe(100);
    expect(evicted).toBe(50);
    // Everything counted at T0 leaves the hour window 63 minutes later.
    expect(l.sweep(T0 + 62 * MIN, 1000)).toBe(0);
    expect(l.sweep(T0 + 63 * MIN, 1000)).toBe(100);
    expect(l.sizes().keys).toBe(0);
    // Freed counters are reused zeroed.
    expect(admitted(l, key("fresh"), 5, T0 + 64 * MIN)).toBe(3);
  });

  it("sweeps in slices", () => {
    const l = limiter(spec(3, 10));
    for (let i = 0; i < 10; i++) l.take(key(`k${i}`), 1, T0);
    expect(l.sweep(T0 + 63 * MIN, 4)).toBe(4);
    expect(l.sweep(T0 + 63 * MIN, 4)).toBe(4);
    expect(l.sweep(T0 + 63 * MIN, 4)).toBe(2);
  });

  it("grows its arrays without losing counts", () => {
    const l = limiter(spec(3, 10), 100_000);
    const first = key("first");
    l.take(first, 2, T0);
    for (let i = 0; i < 5000; i++) l.take(key(`k${i}`), 1, T0);
    expect(l.take(first, 1, T0)).toMatchObject({ allowed: true, remaining: 0 });
  });
});
