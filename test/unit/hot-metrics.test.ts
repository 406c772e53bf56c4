import { Counter, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { HotCounter, HotHistogram } from "../../src/observability/hot-metrics.js";

/** The sample lines of the exposition text (no HELP / TYPE comments). */
function samples(text: string): string[] {
  return text.split("\n").filter((line) => line !== "" && !line.startsWith("#"));
}

/** The exposition text with each sample's labels in name order (their order carries no meaning). */
function normalised(text: string): string {
  return text
    .split("\n")
    .map((line) => {
      const match = /^([^{#]+)\{(.*)\} (.*)$/.exec(line);
      if (!match) return line;
      const labels = match[2].split(/,(?=[a-z_]+=")/).sort();
      return `${match[1]}{${labels.join(",")}} ${match[3]}`;
    })
    .join("\n");
}

describe("hot counter", () => {
  it("counts per label set and exposes the same text as a prom-client counter", async () => {
    const hot = new Registry();
    const reference = new Registry();
    const counter = new HotCounter(hot, "t_decisions_total", "Decisions.", ["rpc", "reason"]);
    const plain = new Counter({ name: "t_decisions_total", help: "Decisions.", labelNames: ["rpc", "reason"], registers: [reference] });
    const allowed = counter.labels("check", "ALLOWED");
    for (let i = 0; i < 3; i++) allowed.inc();
    counter.labels("check", "FORBIDDEN").inc();
    counter.labels("check", "ALLOWED").inc();
    plain.labels("check", "ALLOWED").inc(4);
    plain.labels("check", "FORBIDDEN").inc();

    const text = await hot.metrics();
    expect(samples(text)).toEqual(['t_decisions_total{rpc="check",reason="ALLOWED"} 4', 't_decisions_total{rpc="check",reason="FORBIDDEN"} 1']);
    expect(text).toBe(await reference.metrics());
  });

  it("keeps label sets whose values contain the separator apart", async () => {
    const registry = new Registry();
    const counter = new HotCounter(registry, "t_pairs_total", "Pairs.", ["a", "b"]);
    counter.labels("x", "y").inc();
    counter.labels("x", "y").inc();
    counter.labels("xy", "").inc();
    expect(samples(await registry.metrics())).toEqual(['t_pairs_total{a="x",b="y"} 2', 't_pairs_total{a="xy",b=""} 1']);
  });
});

describe("hot histogram", () => {
  const buckets = [0.001, 0.01, 0.1];

  it("exposes cumulative buckets, +Inf, sum and count exactly as a prom-client histogram", async () => {
    const hot = new Registry();
    const reference = new Registry();
    const histogram = new HotHistogram(hot, "t_duration_seconds", "Durations.", ["rpc"], buckets);
    const plain = new Histogram({ name: "t_duration_seconds", help: "Durations.", labelNames: ["rpc"], buckets, registers: [reference] });
    // On a bound (le is inclusive), between bounds, above every bound.
    const observed = [0.0005, 0.001, 0.005, 0.1, 0.5, 2];
    const check = histogram.labels("check");
    for (const v of observed) {
      check.observe(v);
      plain.labels("check").observe(v);
    }
    histogram.labels("batch").observe(0.02);
    plain.labels("batch").observe(0.02);

    const text = await hot.metrics();
    expect(samples(text).slice(0, 6)).toEqual([
      't_duration_seconds_bucket{rpc="check",le="0.001"} 2',
      't_duration_seconds_bucket{rpc="check",le="0.01"} 3',
      't_duration_seconds_bucket{rpc="check",le="0.1"} 4',
      't_duration_seconds_bucket{rpc="check",le="+Inf"} 6',
      't_duration_seconds_sum{rpc="check"} 2.6065',
      't_duration_seconds_count{rpc="check"} 6',
    ]);
    expect(normalised(text)).toBe(normalised(await reference.metrics()));
  });

  it("exposes nothing for a histogram never observed", async () => {
    const registry = new Registry();
    new HotHistogram(registry, "t_idle_seconds", "Idle.", ["rpc"], buckets);
    expect(samples(await registry.metrics())).toEqual([]);
  });
});
