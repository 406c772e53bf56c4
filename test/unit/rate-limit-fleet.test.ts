/**
 * The fleet exchange takes from Redis's answer only what is a count: a total or a replica count
 * that is NaN, negative, fractional, beyond 32 bits or missing is reported and skipped, so the
 * credential keeps what it knew of the others (a NaN there would never deny).
 */
import { describe, expect, it } from "vitest";
import type { FleetTotals, RateLimitSync } from "../../src/bus/rate-limit-sync.js";
import { CREDENTIAL_WORDS, STANDARD_WINDOWS, combineLimits, takeUnits } from "../../src/core/rate-limit.js";
import { FLEET_WORDS, FleetExchange, SINCE_PUSH } from "../../src/engine/rate-limit-fleet.js";
import { createLogger } from "../../src/observability/logger.js";

const WORDS = CREDENTIAL_WORDS + FLEET_WORDS;
const limits = combineLimits([], { perMinute: 10, perHour: 100, burst: 0, shadow: false });

function exchangeAnswering(answers: FleetTotals[]) {
  const sync: RateLimitSync = { via: "Redis", push: async () => answers.shift()!, close: async () => undefined };
  const bad: number[] = [];
  const logged: string[] = [];
  const logger = createLogger("warn", {}, (line) => void logged.push(line));
  const fleet = new FleetExchange({ sync, intervalMs: 50, graceMs: 0, failOpen: false, logger, onBadReplies: (n) => bad.push(n) }, STANDARD_WINDOWS);
  const state = new Uint32Array(WORDS);
  fleet.follow("k", { state, find: (id) => (id === "x" ? 0 : undefined) });
  const take = (cost: number) => {
    fleet.touch(0, "x");
    const answer = takeUnits(state, 0, STANDARD_WINDOWS, limits, cost, Date.now(), true, fleet.others(state, 0));
    if (answer.allowed) state[SINCE_PUSH] += cost;
    return answer;
  };
  return { fleet, state, take, bad, logged };
}

describe("fleet exchange answers that are no count", () => {
  it.each([
    ["NaN", Number.NaN],
    ["undefined", undefined as unknown as number],
    ["negative", -1],
    ["fractional", 2.5],
    ["beyond 32 bits", 2 ** 32 + 3],
    ["infinite", Number.POSITIVE_INFINITY],
  ])("skips a total that is %s, keeping the last good one, and reports it", async (_, value) => {
    const e = exchangeAnswering([
      { replicas: 2, totals: [6, 6] },
      { replicas: 2, totals: [value, value] },
    ]);
    e.take(2);
    await e.fleet.exchange();
    // The others hold 4 of the 10 (6 in Redis less these 2).
    expect(e.take(0).remaining).toBe(4);
    e.take(1);
    await e.fleet.exchange();
    expect(e.bad).toEqual([2]);
    const others = e.fleet.others(e.state, 0);
    expect([others.minute, others.hour]).toEqual([4, 4]);
    expect(e.take(0).remaining).toBe(3);
    expect(e.logged.map((l) => JSON.parse(l).msg)).toEqual([expect.stringContaining("not counts")]);
  });

  it.each([["NaN", Number.NaN], ["0", 0], ["negative", -1], ["fractional", 1.5]])("keeps the last replica count when Redis answers %s", async (_, value) => {
    const e = exchangeAnswering([
      { replicas: 3, totals: [] },
      { replicas: value, totals: [] },
    ]);
    await e.fleet.exchange();
    await e.fleet.exchange();
    expect(e.fleet.replicas).toBe(3);
    expect(e.bad).toEqual([1]);
    // The estimate of the others' units stays a number, and the limit denies.
    let allowed = 0;
    while (e.take(1).allowed && allowed < 20) allowed++;
    expect(allowed).toBeLessThan(10);
  });

  it("logs at most once a minute while answers stay bad, and counts each", async () => {
    let now = 1_000_000;
    const answers = Array.from({ length: 4 }, () => ({ replicas: 1, totals: [Number.NaN, 1] }));
    const sync: RateLimitSync = { via: "Redis", push: async () => answers.shift()!, close: async () => undefined };
    const bad: number[] = [];
    const logged: string[] = [];
    const fleet = new FleetExchange(
      { sync, intervalMs: 50, graceMs: 0, failOpen: false, logger: createLogger("warn", {}, (l) => void logged.push(l)), onBadReplies: (n) => bad.push(n), now: () => now },
      STANDARD_WINDOWS,
    );
    const state = new Uint32Array(WORDS);
    fleet.follow("k", { state, find: () => 0 });
    for (const step of [0, 1000, 58_000, 1000]) {
      now += step;
      fleet.touch(0, "x");
      await fleet.exchange();
    }
    expect(bad).toEqual([1, 1, 1, 1]);
    expect(logged.map((l) => JSON.parse(l).skipped)).toEqual([1, 3]);
  });
});
