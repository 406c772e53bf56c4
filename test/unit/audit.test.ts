import { describe, expect, it } from "vitest";
import type { Decision } from "../../src/core/decision.js";
import { createDecisionAudit } from "../../src/observability/audit.js";

const allow: Decision = { allowed: true, reason: "ALLOWED", message: "", principal: { kind: "api_key", userId: "u1", username: "alice", keyId: "k1", tenant: "acme", roles: [] }, version: 3 };
const deny: Decision = { allowed: false, reason: "FORBIDDEN", message: "no", principal: undefined, version: 3 };

function setup(rate: number, maxPending = 100, randoms: number[] = []) {
  const written: string[] = [];
  let dropped = 0;
  const audit = createDecisionAudit({
    allowSampleRate: rate,
    maxPending,
    flushIntervalMs: 60_000,
    write: (l) => written.push(l),
    onDropped: () => dropped++,
    random: () => randoms.shift() ?? 0.5,
    now: () => 0,
  });
  return { audit, written, dropped: () => dropped };
}

describe("decision audit", () => {
  it("records every denial and samples allows", () => {
    const { audit, written } = setup(0.1, 100, [0.05, 0.5, 0.09, 0.99]);
    for (let i = 0; i < 4; i++) audit.record("check", allow, "read:x", "acme", `a${i}`);
    audit.record("check", deny, "write:x", "acme", "d1");
    audit.flush();
    const lines = written.join("").trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.map((l) => l.decisionId)).toEqual(["a0", "a2", "d1"]);
    expect(lines[0]).toMatchObject({ msg: "decision", component: "audit", allowed: true, reason: "ALLOWED", userId: "u1", keyId: "k1", tenant: "acme" });
    expect(lines[2]).toMatchObject({ allowed: false, reason: "FORBIDDEN", action: "write:x" });
  });

  it("records every rate-limited decision and every shadow hit with the limit, never the credential", () => {
    const { audit, written } = setup(0);
    const bound = { limit: 5, window: "minute" as const, scope: "role" as const };
    const limited: Decision = { ...allow, allowed: false, reason: "RATE_LIMITED", rate: { allowed: false, bound, remaining: 0, resetMs: 3000 } };
    const shadowed: Decision = { ...allow, rate: { allowed: true, shadow: { ...bound, scope: "tenant" }, bound: { ...bound, limit: 1000, scope: "default" }, remaining: 990, resetMs: 60_000 } };
    const plain: Decision = { ...allow, rate: { allowed: true, bound: { ...bound, limit: 1000, scope: "default" }, remaining: 990, resetMs: 60_000 } };
    audit.record("check", limited, "read:x", "acme", "l1");
    audit.record("check", shadowed, "read:x", "acme", "s1");
    audit.record("check", plain, "read:x", "acme", "p1");
    audit.flush();
    const lines = written.join("").trim().split("\n").map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ decisionId: "l1", reason: "RATE_LIMITED", keyId: "k1", rateLimit: { scope: "role", window: "minute", limit: 5 } });
    expect(lines[1]).toMatchObject({ decisionId: "s1", allowed: true, rateLimit: { scope: "tenant", window: "minute", limit: 5, shadow: true } });
  });

  it("writes a burst of denials in chunks of at most 256 records, a turn of the event loop apart, so no write holds Checks for long", async () => {
    const { audit, written } = setup(0, 10_000);
    const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
    for (let i = 0; i < 1000; i++) audit.record("check", deny, "read:x", "acme", `d${i}`);
    expect(written).toHaveLength(0);
    const sizes: number[] = [];
    // Each turn writes at most one chunk: the rest waits for the next turn (other I/O runs between).
    for (let t = 0; t < 6 && sizes.reduce((a, b) => a + b, 0) < 1000; t++) {
      await turn();
      sizes.push(written.join("").split("\n").length - 1 - sizes.reduce((a, b) => a + b, 0));
    }
    expect(sizes.filter((n) => n > 0)).toEqual([256, 256, 256, 232]);
    const ids = written.join("").trim().split("\n").map((l) => JSON.parse(l).decisionId);
    expect(ids).toEqual(Array.from({ length: 1000 }, (_, i) => `d${i}`));
    audit.close();
  });

  it("writes everything still pending at once on close, a burst in progress included", async () => {
    const { audit, written } = setup(0, 10_000);
    for (let i = 0; i < 1000; i++) audit.record("check", deny, "read:x", "acme", `d${i}`);
    await new Promise<void>((resolve) => setImmediate(resolve));
    await audit.close();
    const ids = written.join("").trim().split("\n").map((l) => JSON.parse(l).decisionId);
    expect(ids).toEqual(Array.from({ length: 1000 }, (_, i) => `d${i}`));
  });

  it("bounds the queue and counts what it drops", () => {
    const { audit, written, dropped } = setup(0, 3);
    for (let i = 0; i < 5; i++) audit.record("check", deny, "read:x", "acme", `d${i}`);
    expect(dropped()).toBe(2);
    audit.close();
    expect(written.join("").trim().split("\n")).toHaveLength(3);
  });

  it("truncates over-long fields and writes nothing when there is nothing", () => {
    const { audit, written } = setup(0);
    audit.flush();
    expect(written).toHaveLength(0);
    audit.record("check", deny, "x".repeat(10_000), "t", "d");
    audit.flush();
    expect(JSON.parse(written[0]).action).toHaveLength(256);
  });
});
