/**
 * Fleet-wide rate limits: what one replica needs to count against the limit of the whole fleet
 * without any I/O on the Check path. Checks count in memory (rate-limiter.ts); every `intervalMs`
 * this exchange sends the fleet (Redis, or without it the primary process of VERDICT_WORKERS: see
 * bus/rate-limit-sync.ts) the units admitted here since the last push, for the credentials seen
 * since, and learns back the fleet's totals and the number of live replicas N (workers count as
 * replicas).
 *
 * A Check adds to its own counts the units the other replicas had at the last exchange, plus an
 * estimate of what they admitted since: (N - 1) times what this replica admitted since. When the
 * fleet's load is spread evenly, every replica holds back exactly its share of what is left, so
 * the fleet admits at most the limit plus what replicas admit before they learn of each other's
 * last exchange (bounded by N - 1 units per credential per exchange in the even case; measured in
 * bench/RESULTS.md). When the load is uneven, a busy replica under-admits by at most (N - 1)
 * times its own admissions within one interval, and catches up at the next exchange.
 *
 * Redis (or the primary) unreachable: while exchanges have failed for less than `graceMs`,
 * nothing changes (the units admitted meanwhile wait to be pushed and keep counting in the
 * estimate, which only makes it stricter), so a slow or lost exchange on a busy machine does not loosen the limit. After
 * that the replica is degraded: fail open (default) counts with this replica's own counts only
 * (the fleet admits up to N times the limit), fail closed answers RATE_LIMITED to every limited
 * credential; the exchange keeps retrying, and the first one that succeeds ends it (the units
 * admitted meanwhile are pushed then).
 *
 * An answer that is no count (Redis held something else than counts under a credential's key, or
 * answered in another shape) is reported (onBadReplies, a log line at most once a minute) and
 * skipped: that credential keeps what it knew of the others, and the replica count its last value.
 */
import type { FleetPush, RateLimitSync } from "../bus/rate-limit-sync.js";
import { CREDENTIAL_WORDS, type Others, type RateWindows } from "../core/rate-limit.js";
import { WINDOW_WORDS, advance, slotAt } from "../core/rate-window.js";
import type { Logger } from "../observability/logger.js";

/** Words of fleet state after a credential's counters: others' minute, others' hour, units since the last push. */
export const FLEET_WORDS = 3;
const REMOTE_MINUTE = CREDENTIAL_WORDS;
const REMOTE_HOUR = CREDENTIAL_WORDS + 1;
/** Offset of "units admitted here since the last push" in a credential's words. */
export const SINCE_PUSH = CREDENTIAL_WORDS + 2;
/** At most one log line a minute about answers that are no count. */
const BAD_REPLY_LOG_MS = 60_000;

/** A count of units as the counters hold them: an integer in 0 .. 2^32 - 1. */
function isCount(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= 0xffff_ffff;
}

/** What the exchange needs of a table of counters. */
export interface FleetTable {
  readonly state: Uint32Array;
  find(id: string): number | undefined;
}

/** Settings of the exchange. */
export interface FleetOptions {
  readonly sync: RateLimitSync;
  readonly intervalMs: number;
  /** How long exchanges may fail before the replica is degraded. */
  readonly graceMs: number;
  /** While the fleet cannot be reached: true counts locally, false denies every limited credential. */
  readonly failOpen: boolean;
  readonly logger: Logger;
  /** Called after each exchange with its duration and whether it succeeded. */
  readonly onExchange?: (seconds: number, ok: boolean) => void;
  /** Called with the seconds spent degraded since the last call (while the fleet is unreachable). */
  readonly onDegraded?: (seconds: number) => void;
  /** Called after an exchange whose answer held values that are no count, with how many (each skipped). */
  readonly onBadReplies?: (count: number) => void;
  readonly now?: () => number;
}

/** The exchange of one replica with the fleet. */
export class FleetExchange {
  /** Live replicas at the last exchange (1 until the first). */
  replicas = 1;
  private degradedSince: number | undefined;
  private failingSince: number | undefined;
  private lastDegradedNote = 0;
  private lastBadReplyLog = Number.NEGATIVE_INFINITY;
  private badRepliesUnlogged = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private closed = false;
  private readonly tables: Array<{ prefix: string; table: FleetTable; dirty: Set<string> }> = [];
  private readonly scratch = { minute: 0, hour: 0, slot: 0 };
  private readonly now: () => number;

  constructor(
    private readonly options: FleetOptions,
    private readonly windows: RateWindows,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** True while the last exchange failed. */
  get degraded(): boolean {
    return this.degradedSince !== undefined;
  }

  /** True while limited credentials must be denied (degraded and failing closed). */
  get failingClosed(): boolean {
    return this.degradedSince !== undefined && !this.options.failOpen;
  }

  /** Follows a table of counters; its credentials are named `<prefix>:<id>` in the fleet's counts. */
  follow(prefix: string, table: FleetTable): void {
    this.tables.push({ prefix, table, dirty: new Set() });
  }

  /** Notes that a credential of the `index`th followed table was counted (it takes part in the next exchange). */
  touch(index: number, id: string): void {
    this.tables[index].dirty.add(id);
  }

  /** The other replicas' units for the credential at `at` (a scratch object, valid until the next call). */
  others(state: Uint32Array, at: number): Others {
    const s = this.scratch;
    if (this.degradedSince !== undefined) {
      s.minute = s.hour = s.slot = 0;
      return s;
    }
    const estimate = (this.replicas - 1) * state[at + SINCE_PUSH];
    s.minute = state[at + REMOTE_MINUTE] + estimate;
    s.hour = state[at + REMOTE_HOUR] + estimate;
    s.slot = estimate;
    return s;
  }

  /** Starts exchanging every intervalMs. */
  start(): void {
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.running = this.exchange().finally(() => {
        this.running = undefined;
        this.schedule(this.degraded ? Math.max(this.options.intervalMs, 200) : this.options.intervalMs);
      });
    }, delayMs);
    this.timer.unref();
  }

  /** One exchange; never rejects (a failure marks the replica degraded). */
  async exchange(): Promise<void> {
    const startedAt = this.now();
    const pushes: FleetPush[] = [];
    const sent: Array<{ table: number; id: string; at: number; units: number }> = [];
    this.tables.forEach(({ prefix, table, dirty }, t) => {
      for (const id of dirty) {
        const at = table.find(id);
        if (at === undefined) continue;
        const units = table.state[at + SINCE_PUSH];
        pushes.push({ name: `${prefix}:${id}`, units });
        sent.push({ table: t, id, at, units });
      }
      dirty.clear();
    });
    const { minute, hour } = this.windows;
    const started = performance.now();
    try {
      const answer = await this.options.sync.push(pushes, slotAt(minute, startedAt), slotAt(hour, startedAt), startedAt);
      this.options.onExchange?.((performance.now() - started) / 1000, true);
      const bad: string[] = [];
      if (isCount(answer.replicas) && answer.replicas > 0) this.replicas = answer.replicas;
      else bad.push("live replicas");
      const now = this.now();
      sent.forEach(({ table, id, at, units }, i) => {
        const minuteTotal = answer.totals[2 * i];
        const hourTotal = answer.totals[2 * i + 1];
        if (!isCount(minuteTotal)) bad.push(`${pushes[i].name} minute`);
        if (!isCount(hourTotal)) bad.push(`${pushes[i].name} hour`);
        const t = this.tables[table].table;
        if (t.find(id) !== at) return;
        const state = t.state;
        state[at + SINCE_PUSH] -= Math.min(units, state[at + SINCE_PUSH]);
        const unpushed = state[at + SINCE_PUSH];
        const ownMinute = advance(state, at, minute, now) - unpushed;
        const ownHour = advance(state, at + WINDOW_WORDS, hour, now) - unpushed;
        if (isCount(minuteTotal)) state[at + REMOTE_MINUTE] = Math.max(0, minuteTotal - ownMinute);
        if (isCount(hourTotal)) state[at + REMOTE_HOUR] = Math.max(0, hourTotal - ownHour);
      });
      if (bad.length > 0) this.reportBad(bad, now);
      this.failingSince = undefined;
      this.noteDegraded(now);
      if (this.degradedSince !== undefined) {
        this.options.logger.info(`rate-limit counts reach ${this.options.sync.via} again; limits are fleet-wide again`, { degradedSeconds: (now - this.degradedSince) / 1000 });
        this.degradedSince = undefined;
      }
    } catch (error) {
      this.options.onExchange?.((performance.now() - started) / 1000, false);
      for (const { table, id } of sent) this.tables[table].dirty.add(id);
      const now = this.now();
      this.failingSince ??= now;
      if (this.degradedSince === undefined && now - this.failingSince >= this.options.graceMs) {
        this.degradedSince = now;
        this.lastDegradedNote = now;
        this.options.logger.warn(
          this.options.failOpen
            ? `cannot reach ${this.options.sync.via} for rate-limit counts; counting on this replica alone (fail open)`
            : `cannot reach ${this.options.sync.via} for rate-limit counts; denying limited credentials (fail closed)`,
          { error },
        );
      } else if (this.degradedSince !== undefined) {
        this.noteDegraded(now);
      }
    }
  }

  private reportBad(bad: readonly string[], now: number): void {
    this.options.onBadReplies?.(bad.length);
    this.badRepliesUnlogged += bad.length;
    if (now - this.lastBadReplyLog < BAD_REPLY_LOG_MS) return;
    this.options.logger.warn("Redis answered values that are not counts for some rate-limit keys; skipped them (those keys hold another type or other data)", {
      skipped: this.badRepliesUnlogged,
      examples: bad.slice(0, 5),
    });
    this.lastBadReplyLog = now;
    this.badRepliesUnlogged = 0;
  }

  private noteDegraded(now: number): void {
    if (this.degradedSince === undefined) return;
    this.options.onDegraded?.((now - this.lastDegradedNote) / 1000);
    this.lastDegradedNote = now;
  }

  /** Stops exchanging after a last push of what is pending (bounded by the sync's timeout). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.running;
    await this.exchange();
    await this.options.sync.close();
  }
}
