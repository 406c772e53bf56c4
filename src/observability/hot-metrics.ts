/**
 * Metrics updated on every Check. prom-client hashes the label set on every inc() and observe(),
 * even through a labelled child; these keep plain numbers per label set (made once) and hand them
 * to the prom-client registry only when it is scraped.
 */
import type { Metric, Registry } from "prom-client";

interface Series {
  readonly labels: Record<string, string>;
}

/** A counter child: one label set's value. */
export interface HotCounterChild {
  inc(): void;
}

/** A histogram child: one label set's buckets. */
export interface HotHistogramChild {
  observe(value: number): void;
}

/** A counter with fixed label names whose children are plain objects. */
export class HotCounter {
  private readonly series = new Map<string, Series & { value: number }>();

  constructor(
    registry: Registry,
    readonly name: string,
    help: string,
    private readonly labelNames: readonly string[],
  ) {
    const metric = {
      name,
      help,
      type: "counter",
      get: async () => ({
        name,
        help,
        type: "counter",
        aggregator: "sum",
        values: [...this.series.values()].map((s) => ({ labels: s.labels, value: s.value })),
      }),
    };
    registry.registerMetric(metric as unknown as Metric);
  }

  /** The child for these label values (make it once, keep it). */
  labels(...values: string[]): HotCounterChild {
    const key = values.join("\u0000");
    let s = this.series.get(key);
    if (!s) {
      s = { labels: Object.fromEntries(this.labelNames.map((n, i) => [n, values[i]])), value: 0 };
      this.series.set(key, s);
    }
    const series = s;
    return {
      inc() {
        series.value++;
      },
    };
  }
}

/** A histogram with fixed buckets and label names whose children are plain arrays. */
export class HotHistogram {
  private readonly series = new Map<string, Series & { counts: Float64Array; sum: number; count: number }>();

  constructor(
    registry: Registry,
    readonly name: string,
    help: string,
    private readonly labelNames: readonly string[],
    private readonly buckets: readonly number[],
  ) {
    const metric = {
      name,
      help,
      type: "histogram",
      get: async () => ({ name, help, type: "histogram", aggregator: "sum", values: this.values() }),
    };
    registry.registerMetric(metric as unknown as Metric);
  }

  /** The child for these label values (make it once, keep it). */
  labels(...values: string[]): HotHistogramChild {
    const key = values.join("\u0000");
    let s = this.series.get(key);
    if (!s) {
      s = { labels: Object.fromEntries(this.labelNames.map((n, i) => [n, values[i]])), counts: new Float64Array(this.buckets.length), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    const series = s;
    const bounds = this.buckets;
    return {
      observe(value: number) {
        for (let i = 0; i < bounds.length; i++) {
          if (value <= bounds[i]) {
            series.counts[i]++;
            break;
          }
        }
        series.sum += value;
        series.count++;
      },
    };
  }

  private values() {
    const out: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
    for (const s of this.series.values()) {
      let cumulative = 0;
      this.buckets.forEach((le, i) => {
        cumulative += s.counts[i];
        out.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le }, value: cumulative });
      });
      out.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le: "+Inf" }, value: s.count });
      out.push({ metricName: `${this.name}_sum`, labels: s.labels, value: s.sum });
      out.push({ metricName: `${this.name}_count`, labels: s.labels, value: s.count });
    }
    return out;
  }
}
