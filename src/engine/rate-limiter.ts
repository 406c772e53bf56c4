/**
 * Rate limits of one replica, in memory: the limits configured per API key, role and tenant (kept
 * in step with the change log), and the counters of every credential seen lately (API keys by key
 * id, users of tokens and sessions by user id; routes per credential and route). Counting is a
 * few array reads and writes per Check, without I/O or objects per credential: counters live in
 * one growing Uint32Array per kind, idle ones are dropped by a background sweep, and the number
 * tracked is capped (the oldest is evicted and counted beyond it).
 */
import type { PrincipalView } from "../core/decision.js";
import {
  type AppliedLimits,
  type ConfigurableScope,
  type ConfiguredLimit,
  CREDENTIAL_WORDS,
  NO_LIMIT,
  type RateAnswer,
  type RateLimitSpec,
  type RateScope,
  type RateWindows,
  STANDARD_WINDOWS,
  combineLimits,
  commitUnits,
  credentialIdle,
  takeUnits,
} from "../core/rate-limit.js";
import type { RateLimitStore } from "../store/store.js";
import { FLEET_WORDS, FleetExchange, type FleetOptions, SINCE_PUSH } from "./rate-limit-fleet.js";

/** A route's own limits (ext_authz rules), counted per credential and route. */
export interface RouteLimit {
  /** Names the route: counters are kept per credential and route id. */
  readonly id: string;
  readonly limits: AppliedLimits;
  /** Limits switched off for the route (`none`): its requests are neither counted nor limited, by any scope. */
  readonly off?: boolean;
}

/** Settings of the limiter. */
export interface RateLimiterOptions {
  /** Limits of a credential none of whose scopes is configured. */
  readonly defaults: RateLimitSpec;
  /** Most credentials counted per kind (API keys, users, credential-route pairs). */
  readonly maxTracked: number;
  /** The windows (STANDARD_WINDOWS unless a test shortens them). */
  readonly windows?: RateWindows;
  /** How often a slice of the counters is checked for idle ones (default 250 ms). */
  readonly sweepIntervalMs?: number;
  /** Counters checked per sweep and kind (default 2,000: a few ms; a million take about two minutes). */
  readonly sweepBatch?: number;
  /** Called when a tracked credential is evicted to make room (its counts are lost). */
  readonly onEvicted?: () => void;
  /** Count against the limit of the whole fleet, exchanging counts (through Redis or the primary process) in the background. */
  readonly fleet?: FleetOptions;
}

// Per credential: its counters, then the fleet-wide state (rate-limit-fleet.ts).
const SUBJECT_WORDS = CREDENTIAL_WORDS + FLEET_WORDS;

/** Counters of one kind of subject, packed in one array. */
export class CounterTable {
  state: Uint32Array;
  private readonly index = new Map<string, number>();
  private readonly free: number[] = [];
  private used = 0;
  private sweeper: Iterator<[string, number]> | undefined;

  constructor(
    private readonly maxTracked: number,
    private readonly onEvicted: () => void,
    initial = 1024,
  ) {
    this.state = new Uint32Array(Math.min(initial, maxTracked) * SUBJECT_WORDS);
  }

  /** Credentials tracked now. */
  get size(): number {
    return this.index.size;
  }

  /** Where the counters of `id` start, or undefined when it has none. */
  find(id: string): number | undefined {
    return this.index.get(id);
  }

  /** Where the counters of `id` start, making zeroed ones if needed. */
  at(id: string): number {
    const found = this.index.get(id);
    if (found !== undefined) return found;
    if (this.index.size >= this.maxTracked) {
      // Map order is insertion order: the first entry is the credential tracked longest.
      const oldest = this.index.keys().next().value as string;
      this.release(oldest);
      this.onEvicted();
    }
    let at = this.free.pop();
    if (at === undefined) {
      at = this.used;
      this.used += SUBJECT_WORDS;
      if (this.used > this.state.length) {
        const grown = new Uint32Array(Math.min(this.state.length * 2, this.maxTracked * SUBJECT_WORDS));
        grown.set(this.state);
        this.state = grown;
      }
    }
    this.state.fill(0, at, at + SUBJECT_WORDS);
    this.index.set(id, at);
    return at;
  }

  private release(id: string): void {
    const at = this.index.get(id);
    if (at === undefined) return;
    this.index.delete(id);
    this.free.push(at);
  }

  /** Drops counters with nothing left in their windows, checking at most `budget` of them; returns how many. */
  sweep(windows: RateWindows, nowMs: number, budget: number): number {
    let dropped = 0;
    this.sweeper ??= this.index.entries();
    for (let i = 0; i < budget; i++) {
      const next = this.sweeper.next();
      if (next.done) {
        this.sweeper = undefined;
        break;
      }
      const [id, at] = next.value;
      if (this.state[at + SINCE_PUSH] === 0 && credentialIdle(this.state, at, windows, nowMs)) {
        this.release(id);
        dropped++;
      }
    }
    return dropped;
  }
}

/** The limiter of one replica. */
export class RateLimiter {
  readonly windows: RateWindows;
  readonly keys: CounterTable;
  readonly users: CounterTable;
  readonly routes: CounterTable;
  private readonly configured = { key: new Map<string, RateLimitSpec>(), role: new Map<string, RateLimitSpec>(), tenant: new Map<string, RateLimitSpec>() };
  private readonly defaultLimits: AppliedLimits;
  private cache = new WeakMap<PrincipalView, AppliedLimits>();
  private readonly sweepTimer: NodeJS.Timeout;
  /** The exchange with the other replicas, when limits are fleet-wide. */
  readonly fleet: FleetExchange | undefined;

  constructor(private readonly options: RateLimiterOptions) {
    this.windows = options.windows ?? STANDARD_WINDOWS;
    const evicted = options.onEvicted ?? (() => undefined);
    this.keys = new CounterTable(options.maxTracked, evicted);
    this.users = new CounterTable(options.maxTracked, evicted);
    this.routes = new CounterTable(options.maxTracked, evicted);
    this.defaultLimits = combineLimits([], options.defaults);
    const batch = options.sweepBatch ?? 2_000;
    this.sweepTimer = setInterval(() => this.sweep(Date.now(), batch), options.sweepIntervalMs ?? 250);
    this.sweepTimer.unref();
    if (options.fleet) {
      this.fleet = new FleetExchange(options.fleet, this.windows);
      this.fleet.follow("k", this.keys);
      this.fleet.follow("u", this.users);
      this.fleet.follow("r", this.routes);
      this.fleet.start();
    }
  }

  /** Credentials counted now, by kind. */
  sizes(): { keys: number; users: number; routes: number } {
    return { keys: this.keys.size, users: this.users.size, routes: this.routes.size };
  }

  /** Drops idle counters (at most `budget` checked per kind); returns how many were dropped. */
  sweep(nowMs: number, budget: number): number {
    return this.keys.sweep(this.windows, nowMs, budget) + this.users.sweep(this.windows, nowMs, budget) + this.routes.sweep(this.windows, nowMs, budget);
  }

  /** Replaces every configured limit (after a full reload). */
  replaceLimits(all: readonly ConfiguredLimit[]): void {
    for (const map of Object.values(this.configured)) map.clear();
    for (const l of all) this.configured[l.scope].set(l.id, l.spec);
    this.cache = new WeakMap();
  }

  /** Sets (or with undefined removes) the limit of one scope. */
  setLimit(scope: ConfigurableScope, id: string, spec: RateLimitSpec | undefined): void {
    if (spec) this.configured[scope].set(id, spec);
    else this.configured[scope].delete(id);
    this.cache = new WeakMap();
  }

  /** The bounds that apply to a principal: its key's, its roles' and its tenant's limits, else the defaults. */
  limitsFor(principal: PrincipalView): AppliedLimits {
    const { key, role, tenant } = this.configured;
    if (key.size === 0 && role.size === 0 && tenant.size === 0) return this.defaultLimits;
    let limits = this.cache.get(principal);
    if (limits) return limits;
    const found: Array<{ scope: RateScope; spec: RateLimitSpec }> = [];
    const k = principal.kind === "api_key" ? key.get(principal.keyId) : undefined;
    if (k) found.push({ scope: "key", spec: k });
    for (const r of principal.roles) {
      const spec = role.get(r);
      if (spec) found.push({ scope: "role", spec });
    }
    const t = tenant.get(principal.tenant);
    if (t) found.push({ scope: "tenant", spec: t });
    limits = found.length === 0 ? this.defaultLimits : combineLimits(found, this.options.defaults);
    this.cache.set(principal, limits);
    return limits;
  }

  /**
   * Counts a request of `cost` units (0: only asks) for the principal's credential, and for the
   * credential on `route` when given; consumes only when every bound admits it. The answer
   * reports the bound that denied (the longer wait when both did), else the one with fewer units left.
   */
  take(principal: PrincipalView, cost: number, nowMs: number, route?: RouteLimit): RateAnswer {
    if (route?.off) return NO_LIMIT;
    const limits = this.limitsFor(principal);
    const isKey = principal.kind === "api_key";
    const table = isKey ? this.keys : this.users;
    const id = isKey ? principal.keyId : principal.userId;
    const fleet = this.fleet;
    if (!route) {
      if (!hasBounds(limits)) return NO_LIMIT;
      // at() may grow the array: read state after it.
      const at = table.at(id);
      if (!fleet) return takeUnits(table.state, at, this.windows, limits, cost, nowMs);
      fleet.touch(isKey ? 0 : 1, id);
      if (fleet.failingClosed) return closedAnswer(limits);
      const answer = takeUnits(table.state, at, this.windows, limits, cost, nowMs, true, fleet.others(table.state, at));
      if (answer.allowed) table.state[at + SINCE_PUSH] += cost;
      return answer;
    }
    const routeId = `${id}\u0000${route.id}`;
    const at = table.at(id);
    const routeAt = this.routes.at(routeId);
    if (fleet) {
      fleet.touch(isKey ? 0 : 1, id);
      fleet.touch(2, routeId);
      if (fleet.failingClosed && (hasBounds(limits) || hasBounds(route.limits))) return closedAnswer(hasBounds(route.limits) ? route.limits : limits);
    }
    const own = takeUnits(table.state, at, this.windows, limits, cost, nowMs, false, fleet?.others(table.state, at));
    const theirs = takeUnits(this.routes.state, routeAt, this.windows, route.limits, cost, nowMs, false, fleet?.others(this.routes.state, routeAt));
    const allowed = own.allowed && theirs.allowed;
    if (allowed && cost > 0) {
      commitUnits(table.state, at, cost);
      commitUnits(this.routes.state, routeAt, cost);
      if (fleet) {
        table.state[at + SINCE_PUSH] += cost;
        this.routes.state[routeAt + SINCE_PUSH] += cost;
      }
    }
    let reported: RateAnswer;
    if (!own.allowed && !theirs.allowed) reported = theirs.resetMs > own.resetMs ? theirs : own;
    else if (!own.allowed) reported = own;
    else if (!theirs.allowed) reported = theirs;
    else reported = theirs.bound && (!own.bound || theirs.remaining < own.remaining) ? theirs : own;
    return { ...reported, allowed, shadow: own.shadow ?? theirs.shadow };
  }

  /**
   * Counts a request of `cost` units on `route` for a subject that is not a credential (ext_authz:
   * the client address on an exempt path), against the route's limits only; consumes when allowed.
   * Fleet-wide like the credential-route counters.
   */
  takeAnonymous(subject: string, route: RouteLimit, cost: number, nowMs: number): RateAnswer {
    if (route.off || !hasBounds(route.limits)) return NO_LIMIT;
    // \u0001 keeps these apart from credential-route counters (key and user ids hold no control characters).
    const routeId = `\u0001${subject}\u0000${route.id}`;
    const at = this.routes.at(routeId);
    const fleet = this.fleet;
    if (!fleet) return takeUnits(this.routes.state, at, this.windows, route.limits, cost, nowMs);
    fleet.touch(2, routeId);
    if (fleet.failingClosed) return closedAnswer(route.limits);
    const answer = takeUnits(this.routes.state, at, this.windows, route.limits, cost, nowMs, true, fleet.others(this.routes.state, at));
    if (answer.allowed) this.routes.state[at + SINCE_PUSH] += cost;
    return answer;
  }

  /** Stops the sweep and the exchange (after a last push of what is pending). */
  async close(): Promise<void> {
    clearInterval(this.sweepTimer);
    await this.fleet?.close();
  }
}

/**
 * Keeps the limiter's limits in step with the store: a full reload (no ids) reads them all, a
 * "rate_limit" change (id "scope:subject") reloads that one.
 */
export function rateLimitApplier(store: RateLimitStore, limiter: RateLimiter): (ids: readonly string[]) => Promise<void> {
  return async (ids) => {
    if (ids.length === 0) {
      limiter.replaceLimits(await store.listRateLimits());
      return;
    }
    const read = await Promise.all(
      ids.map(async (changeId) => {
        const at = changeId.indexOf(":");
        const scope = changeId.slice(0, at) as ConfigurableScope;
        const id = changeId.slice(at + 1);
        return { scope, id, found: await store.getRateLimit(scope, id) };
      }),
    );
    for (const { scope, id, found } of read) limiter.setLimit(scope, id, found?.spec);
  };
}

function hasBounds(l: AppliedLimits): boolean {
  return (
    l.minute !== undefined ||
    l.hour !== undefined ||
    l.burst !== undefined ||
    l.shadowMinute !== undefined ||
    l.shadowHour !== undefined ||
    l.shadowBurst !== undefined
  );
}

/** The answer while failing closed: the tightest enforced bound, nothing left, retry in a second. */
function closedAnswer(limits: AppliedLimits): RateAnswer {
  const bound = limits.minute ?? limits.hour ?? limits.burst;
  if (!bound) return NO_LIMIT;
  return { allowed: false, bound, remaining: 0, resetMs: 1000, unavailable: true };
}
