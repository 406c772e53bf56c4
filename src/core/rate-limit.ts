/**
 * Rate limits as the decision core sees them: what may be configured for a scope, how the limits
 * of several scopes combine (the tightest wins, per window), and the answer for one request of a
 * given cost against one credential's counters (rate-window.ts holds the algorithm and its exact
 * semantics). Pure: the caller passes the clock and owns the counters.
 */
import { WINDOW_WORDS, type WindowShape, add, advance, isIdle, msUntilEmpty, msUntilFits, msUntilNextSlot, slotUnits, windowShape } from "./rate-window.js";

/** Where a limit comes from. "route" is for limits attached to a route by the ext_authz rules. */
export type RateScope = "default" | "key" | "role" | "tenant" | "route";

/**
 * The limits configured for one scope. 0 switches a window off (for this scope: no limit from
 * it); burst, when not 0, caps the units admitted within one slot (3 s) of the minute window.
 * A shadow limit counts and reports what it would deny without denying.
 */
export interface RateLimitSpec {
  readonly perMinute: number;
  readonly perHour: number;
  readonly burst: number;
  readonly shadow: boolean;
}

/** The scopes limits may be set for through the Admin API. */
export type ConfigurableScope = "key" | "role" | "tenant";

/** A limit set for one scope. */
export interface ConfiguredLimit {
  readonly scope: ConfigurableScope;
  /** Key id, role name or tenant id. */
  readonly id: string;
  readonly spec: RateLimitSpec;
}

/** Largest number accepted for a limit or a burst (a billion a minute is already no limit). */
export const MAX_RATE = 1_000_000_000;

/** Why a spec is not acceptable, or undefined when it is. */
export function rateLimitSpecProblem(spec: RateLimitSpec): string | undefined {
  for (const [name, v] of [["per_minute", spec.perMinute], ["per_hour", spec.perHour], ["burst", spec.burst]] as const) {
    if (!Number.isInteger(v) || v < 0) return `${name} must be a whole number of at least 0, got ${v}`;
    if (v > MAX_RATE) return `${name} must be at most ${MAX_RATE}, got ${v}`;
  }
  if (spec.burst > 0 && spec.perMinute === 0) return "burst needs a per_minute limit (per_minute is 0)";
  if (spec.burst > spec.perMinute) return `burst (${spec.burst}) must not exceed per_minute (${spec.perMinute})`;
  if (spec.perHour > 0 && spec.perMinute > spec.perHour) {
    return `per_minute (${spec.perMinute}) must not exceed per_hour (${spec.perHour})`;
  }
  return undefined;
}

/** The two windows every credential is counted in: "minute" and "hour". */
export interface RateWindows {
  readonly minute: WindowShape;
  readonly hour: WindowShape;
}

/** The real minute and hour (tests of whole fleets may shorten both by the same factor). */
export const STANDARD_WINDOWS: RateWindows = Object.freeze({ minute: windowShape(60_000), hour: windowShape(3_600_000) });

/** Words of counter state one credential takes (a minute and an hour window). */
export const CREDENTIAL_WORDS = 2 * WINDOW_WORDS;

/** Which window a bound applies to: the minute, the hour, or one slot of the minute (burst). */
export type RateWindowName = "minute" | "hour" | "burst";

/** One bound in force: a number of units, the window it counts in, and the scope it came from. */
export interface Bound {
  readonly limit: number;
  readonly window: RateWindowName;
  readonly scope: RateScope;
}

/** The bounds applying to one request: per window, the tightest enforced one and the tightest shadow one. */
export interface AppliedLimits {
  readonly minute?: Bound;
  readonly hour?: Bound;
  readonly burst?: Bound;
  readonly shadowMinute?: Bound;
  readonly shadowHour?: Bound;
  readonly shadowBurst?: Bound;
}

function tighter(current: Bound | undefined, limit: number, window: RateWindowName, scope: RateScope): Bound | undefined {
  if (limit === 0) return current;
  return current === undefined || limit < current.limit ? Object.freeze({ limit, window, scope }) : current;
}

/**
 * Combines the specs of the scopes that apply to a request. Per window the smallest non-zero
 * limit wins; when no scope is configured, `defaults` apply (scope "default"). Shadow specs form
 * their own bounds, kept only where tighter than the enforced one.
 */
export function combineLimits(configured: ReadonlyArray<{ readonly scope: RateScope; readonly spec: RateLimitSpec }>, defaults: RateLimitSpec): AppliedLimits {
  const all = configured.some((c) => !c.spec.shadow) ? configured : [{ scope: "default" as const, spec: defaults }, ...configured];
  let minute: Bound | undefined, hour: Bound | undefined, burst: Bound | undefined;
  let shadowMinute: Bound | undefined, shadowHour: Bound | undefined, shadowBurst: Bound | undefined;
  for (const { scope, spec } of all) {
    if (spec.shadow) {
      shadowMinute = tighter(shadowMinute, spec.perMinute, "minute", scope);
      shadowHour = tighter(shadowHour, spec.perHour, "hour", scope);
      shadowBurst = tighter(shadowBurst, spec.burst, "burst", scope);
    } else {
      minute = tighter(minute, spec.perMinute, "minute", scope);
      hour = tighter(hour, spec.perHour, "hour", scope);
      burst = tighter(burst, spec.burst, "burst", scope);
    }
  }
  const keep = (shadow: Bound | undefined, enforced: Bound | undefined) => (shadow && (!enforced || shadow.limit < enforced.limit) ? shadow : undefined);
  return Object.freeze({
    minute,
    hour,
    burst,
    shadowMinute: keep(shadowMinute, minute),
    shadowHour: keep(shadowHour, hour),
    shadowBurst: keep(shadowBurst, burst),
  });
}

/** The answer for one request. */
export interface RateAnswer {
  /** False when an enforced bound denies it (nothing was consumed). */
  readonly allowed: boolean;
  /** Set when a shadow bound would have denied a request that was allowed. */
  readonly shadow?: Bound;
  /** The reported bound: the one that denied, or the one with the fewest units left; absent when unlimited. */
  readonly bound?: Bound;
  /** Units left in the reported bound after this request. */
  readonly remaining: number;
  /**
   * Milliseconds until the reported bound would admit this request (when denied), or until it is
   * whole again (when allowed).
   */
  readonly resetMs: number;
  /** Set when the fleet's counts could not be reached and limits fail closed. */
  readonly unavailable?: true;
}

/**
 * Units other replicas spent, as this replica last learnt (or estimates): added to its own counts
 * in each window. A single replica passes none.
 */
export interface Others {
  readonly minute: number;
  readonly hour: number;
  readonly slot: number;
}

const NO_OTHERS: Others = Object.freeze({ minute: 0, hour: 0, slot: 0 });

/** Milliseconds until this replica's own units leave room for `need` under `room`; a whole window when they never can. */
function waitFor(state: Uint32Array, at: number, shape: WindowShape, nowMs: number, room: number, need: number): number {
  return room < need ? shape.periodMs + shape.slotMs : msUntilFits(state, at, shape, nowMs, room, need);
}

/** The answer when no bound applies. */
export const NO_LIMIT: RateAnswer = Object.freeze({ allowed: true, remaining: 0, resetMs: 0 });

function fits(used: number, cost: number, bound: Bound | undefined): boolean {
  return bound === undefined || used + cost <= bound.limit;
}

/**
 * Answers a request of `cost` units (0: only asks) against one credential's counters at
 * `state[at .. at + CREDENTIAL_WORDS)` counted in `windows`, consuming the units when it is allowed
 * (unless `consume` is false: the caller then decides, with other counters, and calls commitUnits).
 * `others` are units other replicas spent in each window (fleet-wide limits).
 */
export function takeUnits(
  state: Uint32Array,
  at: number,
  windows: RateWindows,
  limits: AppliedLimits,
  cost: number,
  nowMs: number,
  consume = true,
  others: Others = NO_OTHERS,
): RateAnswer {
  const { minute: MINUTE, hour: HOUR } = windows;
  const m = at;
  const h = at + WINDOW_WORDS;
  const usedMinute = advance(state, m, MINUTE, nowMs) + others.minute;
  const usedHour = advance(state, h, HOUR, nowMs) + others.hour;
  const usedSlot = slotUnits(state, m) + others.slot;
  if (!fits(usedMinute, cost, limits.minute) || !fits(usedHour, cost, limits.hour) || !fits(usedSlot, cost, limits.burst)) {
    let worst: Bound | undefined;
    let wait = -1;
    const consider = (bound: Bound, ms: number) => {
      if (ms > wait) {
        wait = ms;
        worst = bound;
      }
    };
    if (!fits(usedMinute, cost, limits.minute)) consider(limits.minute!, waitFor(state, m, MINUTE, nowMs, limits.minute!.limit - others.minute, cost));
    if (!fits(usedHour, cost, limits.hour)) consider(limits.hour!, waitFor(state, h, HOUR, nowMs, limits.hour!.limit - others.hour, cost));
    if (!fits(usedSlot, cost, limits.burst)) {
      consider(limits.burst!, cost > limits.burst!.limit ? MINUTE.periodMs : msUntilNextSlot(MINUTE, nowMs));
    }
    const used = worst!.window === "minute" ? usedMinute : worst!.window === "hour" ? usedHour : usedSlot;
    return { allowed: false, bound: worst, remaining: Math.max(0, worst!.limit - used), resetMs: wait };
  }
  let shadow: RateAnswer["shadow"];
  if (!fits(usedMinute, cost, limits.shadowMinute)) shadow = limits.shadowMinute;
  else if (!fits(usedHour, cost, limits.shadowHour)) shadow = limits.shadowHour;
  else if (!fits(usedSlot, cost, limits.shadowBurst)) shadow = limits.shadowBurst;
  const leftMinute = limits.minute ? limits.minute.limit - usedMinute - cost : Infinity;
  const leftHour = limits.hour ? limits.hour.limit - usedHour - cost : Infinity;
  if (leftMinute === Infinity && leftHour === Infinity) {
    if (consume && cost > 0) commitUnits(state, at, cost);
    return shadow ? { ...NO_LIMIT, shadow } : NO_LIMIT;
  }
  const minuteReported = leftMinute <= leftHour;
  const answer: RateAnswer = {
    allowed: true,
    shadow,
    bound: minuteReported ? limits.minute : limits.hour,
    remaining: minuteReported ? leftMinute : leftHour,
    resetMs: minuteReported ? msUntilEmpty(state, m, MINUTE, nowMs, cost > 0) : msUntilEmpty(state, h, HOUR, nowMs, cost > 0),
  };
  if (consume && cost > 0) commitUnits(state, at, cost);
  return answer;
}

/** Whether every unit counted for the credential at `state[at]` has expired at `nowMs` (its counters may be dropped). */
export function credentialIdle(state: Uint32Array, at: number, windows: RateWindows, nowMs: number): boolean {
  return isIdle(state, at, windows.minute, nowMs) && isIdle(state, at + WINDOW_WORDS, windows.hour, nowMs);
}

/** Consumes `cost` units right after a takeUnits(..., consume = false) at the same time allowed it. */
export function commitUnits(state: Uint32Array, at: number, cost: number): void {
  add(state, at, cost);
  add(state, at + WINDOW_WORDS, cost);
}
