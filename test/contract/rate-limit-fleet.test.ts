/**
 * One replica's exchange of rate-limit counts with the machine's Redis (through a proxy this file
 * cuts): the others' units come back into its counts, a failure shorter than the grace changes
 * nothing, a longer one degrades it (fail closed here), and the first exchange that works ends it.
 */
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { createRedisRateLimitSync } from "../../src/bus/rate-limit-sync.js";
import { CREDENTIAL_WORDS, STANDARD_WINDOWS, combineLimits, takeUnits } from "../../src/core/rate-limit.js";
import { SLOTS } from "../../src/core/rate-window.js";
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
