/**
 * One replica's exchange of rate-limit counts with the machine's Redis (through a proxy this file
 * cuts): the others' units come back into its counts, a failure shorter than the grace changes
 * nothing, a longer one degrades it (fail closed here), and the first exchange that works ends it.
 * A credential whose keys hold something else than counts is reported and skipped, never counted.
 */
import { Redis } from "ioredis";
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { createRedisRateLimitSync } from "../../src/bus/rate-limit-sync-redis.js";
import { CREDENTIAL_WORDS, STANDARD_WINDOWS, combineLimits, takeUnits } from "../../src/core/rate-limit.js";
import { SLOTS, slotAt } from "../../src/core/rate-window.js";
import { FLEET_WORDS, FleetExchange, SINCE_PUSH } from "../../src/engine/rate-limit-fleet.js";
import { createLogger } from "../../src/observability/logger.js";
import { type TcpProxy, startTcpProxy } from "../helpers/tcp-proxy.js";
import { TEST_REDIS_URL } from "../helpers/verdict.js";

const WORDS = CREDENTIAL_WORDS + FLEET_WORDS;
const limits = combineLimits([], { perMinute: 10, perHour: 0, burst: 0, shadow: false });
const prefix = `verdict:it:${randomBytes(4).toString("hex")}`;
const proxies: TcpProxy[] = [];
const exchanges: FleetExchange[] = [];

afterAll(async () => {
  for (const e of exchanges) await e.close().catch(() => undefined);
  for (const p of proxies) await p.close();
});

async function replica(id: string, graceMs: number) {
  const redis = new URL(TEST_REDIS_URL);
  const proxy = await startTcpProxy(redis.hostname, Number(redis.port || 6379));
  proxies.push(proxy);
  const sync = createRedisRateLimitSync({
    url: `redis://127.0.0.1:${proxy.port}`,
    prefix,
    replicaId: id,
    ring: SLOTS + 1,
    minuteTtlMs: 70_000,
    hourTtlMs: 4_000_000,
    liveMs: 5000,
    timeoutMs: 200,
  });
  const fleet = new FleetExchange({ sync, intervalMs: 50, graceMs, failOpen: false, logger: createLogger("error") }, STANDARD_WINDOWS);
  exchanges.push(fleet);
  const state = new Uint32Array(WORDS);
  fleet.follow("k", { state, find: (key) => (key === "shared" ? 0 : undefined) });
  const take = (cost = 1) => {
    fleet.touch(0, "shared");
    const answer = takeUnits(state, 0, STANDARD_WINDOWS, limits, cost, Date.now(), true, fleet.others(state, 0));
    if (answer.allowed) state[SINCE_PUSH] += cost;
    return answer;
  };
  return { fleet, proxy, take };
}

describe("fleet exchange", () => {
  it("learns the other replicas' units, stays strict through a short failure, degrades after the grace and recovers", async () => {
    const a = await replica("a", 600);
    const b = await replica("b", 600);
    for (let i = 0; i < 4; i++) expect(a.take().allowed).toBe(true);
    // B's first Check of the credential (nothing known of the others yet) marks it for exchange.
    expect(b.take(0).remaining).toBe(10);
    await a.fleet.exchange();
    await b.fleet.exchange();
    await a.fleet.exchange();
    expect(a.fleet.replicas).toBe(2);
    // B learnt A's 4 units: 6 are left for it.
    expect(b.take(0).remaining).toBe(6);

    await b.proxy.cut();
    await b.fleet.exchange();
    expect(b.fleet.degraded).toBe(false);
    expect(b.fleet.failingClosed).toBe(false);
    expect(b.take().allowed).toBe(true);
    await new Promise((r) => setTimeout(r, 700));
    await b.fleet.exchange();
    expect(b.fleet.failingClosed).toBe(true);

    await b.proxy.restore();
    const deadline = Date.now() + 5000;
    while (b.fleet.degraded && Date.now() < deadline) {
      await b.fleet.exchange();
      if (b.fleet.degraded) await new Promise((r) => setTimeout(r, 100));
    }
    expect(b.fleet.degraded).toBe(false);
    // The unit B admitted while Redis was away reached Redis: A, at its next exchange, sees 5 used.
    a.take(0);
    await a.fleet.exchange();
    expect(a.take(0).remaining).toBe(5);
  });
});

describe("fleet exchange with garbage in Redis", () => {
  const garbagePrefix = `verdict:it:${randomBytes(4).toString("hex")}`;
  const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true });
  afterAll(async () => {
    const keys = await redis.keys(`${garbagePrefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  /** What each credential's minute key holds before the exchange, by credential id. */
  /** A slot of the current minute window (what an older one holds is dropped, garbage or not). */
  const slot = () => String(slotAt(STANDARD_WINDOWS.minute, Date.now()) - 1);
  const garbage: Record<string, (key: string) => Promise<unknown>> = {
    "a string": (key) => redis.set(key, "garbage"),
    "a list": (key) => redis.rpush(key, "1", "2"),
    "a count that is not a number": (key) => redis.hset(key, slot(), "lots"),
    "a count of NaN": (key) => redis.hset(key, slot(), "nan"),
    "an infinite count": (key) => redis.hset(key, slot(), "inf"),
    "a negative count": (key) => redis.hset(key, slot(), "-7"),
    "a count beyond 32 bits": (key) => redis.hset(key, slot(), String(2 ** 32 + 3)),
    "a fractional count": (key) => redis.hset(key, slot(), "1.5"),
    "a slot that is not a number": (key) => redis.hset(key, "slot", "3"),
  };
  const ids = ["good", ...Object.keys(garbage)];

  async function follower(id: string, bad: number[]) {
    const sync = createRedisRateLimitSync({ url: TEST_REDIS_URL, prefix: garbagePrefix, replicaId: id, ring: SLOTS + 1, minuteTtlMs: 70_000, hourTtlMs: 4_000_000, liveMs: 5000, timeoutMs: 500 });
    const fleet = new FleetExchange(
      { sync, intervalMs: 50, graceMs: 0, failOpen: false, logger: createLogger("error"), onBadReplies: (n) => bad.push(n) },
      STANDARD_WINDOWS,
    );
    exchanges.push(fleet);
    const state = new Uint32Array(WORDS * ids.length);
    fleet.follow("k", { state, find: (key) => (ids.includes(key) ? ids.indexOf(key) * WORDS : undefined) });
    const take = (id: string, cost = 1) => {
      const at = ids.indexOf(id) * WORDS;
      fleet.touch(0, id);
      const answer = takeUnits(state, at, STANDARD_WINDOWS, limits, cost, Date.now(), true, fleet.others(state, at));
      if (answer.allowed) state[at + SINCE_PUSH] += cost;
      return answer;
    };
    return { fleet, state, take };
  }

  it("counts and skips a reply that is not a count, never folding it into the counts, and keeps the others fleet-wide", async () => {
    await redis.connect();
    for (const [id, put] of Object.entries(garbage)) await put(`${garbagePrefix}:k:${id}:m`);
    const badA: number[] = [];
    const badB: number[] = [];
    const a = await follower("a", badA);
    const b = await follower("b", badB);
    for (const id of ids) for (let i = 0; i < 3; i++) expect({ id, allowed: a.take(id).allowed }).toEqual({ id, allowed: true });
    for (const id of ids) b.take(id, 0);
    await a.fleet.exchange();
    await b.fleet.exchange();
    await a.fleet.exchange();
    // Redis answered: neither replica is degraded, and both count two live replicas.
    for (const r of [a, b]) expect({ degraded: r.fleet.degraded, replicas: r.fleet.replicas }).toEqual({ degraded: false, replicas: 2 });
    // B learnt A's 3 units of the good credential; of every other it knows nothing more, and no count is off.
    expect(b.take("good", 0).remaining).toBe(7);
    for (const id of Object.keys(garbage)) {
      const others = b.fleet.others(b.state, ids.indexOf(id) * WORDS);
      expect({ id, minute: others.minute, remaining: b.take(id, 0).remaining }).toEqual({ id, minute: 0, remaining: 10 });
      // A's own counts stand: 3 used, 7 left, whatever Redis held.
      expect({ id, remaining: a.take(id, 0).remaining }).toEqual({ id, remaining: 7 });
    }
    // Each exchange reported the minute window of every garbage credential as a bad reply.
    expect(badA).toEqual([Object.keys(garbage).length]);
    expect(badB).toEqual([Object.keys(garbage).length]);
    // A's limit still holds for a garbage credential (no NaN that never denies): at most 7 more.
    const allowed = Array.from({ length: 10 }, () => a.take("a count of NaN").allowed).filter(Boolean).length;
    expect(allowed).toBeGreaterThan(0);
    expect(allowed).toBeLessThanOrEqual(7);
  });
});
