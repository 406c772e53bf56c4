/**
 * The rate-limit algorithm: a sliding window counted in slots, pure (no clock of its own, no I/O).
 *
 * What "L per P" means, exactly. A window of period P is cut into SLOTS slots of P / SLOTS each
 * (a minute: 3 s slots; an hour: 3 min slots). A request of cost n is admitted when the units
 * already admitted in the current slot and the SLOTS slots before it, plus n, are at most L. So:
 * - at most L units are admitted in ANY interval of length P (every such interval lies within
 *   SLOTS + 1 consecutive slots): no double burst at a window edge, where a fixed window allows 2L
 *   within a millisecond;
 * - a credential that has been idle for P + one slot may spend all L at once;
 * - a unit admitted in slot s counts until slot s + SLOTS + 1 begins (between P and P + one slot
 *   later), so a client asking for more than L gets exactly L in its first P after an idle period,
 *   then L in every P + one slot: on average at least SLOTS / (SLOTS + 1) = 95.2% of L per P.
 * Burst B (optional, 0: none) additionally caps the units admitted within one slot at B.
 *
 * State lives in a caller-owned Uint32Array, WINDOW_WORDS words per window, so that a million
 * credentials cost no object each: [head slot number, total, count of slot 0 .. count of SLOTS].
 * Slot numbers count slots since ORIGIN_MS (the same on every replica, so that they can share
 * counts); they fit in 32 bits for more than forty years even with 300 ms slots.
 */

/** Where slot 0 begins: 2026-01-01T00:00:00Z. */
export const ORIGIN_MS = Date.UTC(2026, 0, 1);

/** Slots per window. */
export const SLOTS = 20;

const RING = SLOTS + 1;

/** Milliseconds from `nowMs` until the next slot of the window begins. */
export function msUntilNextSlot(shape: WindowShape, nowMs: number): number {
  return slotStart(shape, slotAt(shape, nowMs) + 1) - nowMs;
}

/** Words of state one window takes. */
export const WINDOW_WORDS = RING + 2;

/** The shape of a window: its period and slot length in milliseconds. */
export interface WindowShape {
  readonly periodMs: number;
  readonly slotMs: number;
}

/** A window of `periodMs` (a whole multiple of SLOTS milliseconds). */
export function windowShape(periodMs: number): WindowShape {
  if (!Number.isInteger(periodMs) || periodMs <= 0 || periodMs % SLOTS !== 0) {
    throw new Error(`window period must be a positive multiple of ${SLOTS} ms, got ${periodMs}`);
  }
  return Object.freeze({ periodMs, slotMs: periodMs / SLOTS });
}

/** The slot `nowMs` falls in (0 before ORIGIN_MS). */
export function slotAt(shape: WindowShape, nowMs: number): number {
  return nowMs <= ORIGIN_MS ? 0 : Math.floor((nowMs - ORIGIN_MS) / shape.slotMs);
}

/** When slot `slot` begins, in ms since the epoch. */
function slotStart(shape: WindowShape, slot: number): number {
  return ORIGIN_MS + slot * shape.slotMs;
}

/** Brings the window at `at` forward to `nowMs`, dropping the slots that left it; returns the units in it. */
export function advance(state: Uint32Array, at: number, shape: WindowShape, nowMs: number): number {
  const slot = slotAt(shape, nowMs);
  const head = state[at];
  if (slot <= head) return state[at + 1];
  if (state[at + 1] === 0) {
    // Empty: every count is already 0.
  } else if (slot - head >= RING) {
    state.fill(0, at + 1, at + WINDOW_WORDS);
  } else {
    let total = state[at + 1];
    for (let s = head + 1; s <= slot; s++) {
      const i = at + 2 + (s % RING);
      total -= state[i];
      state[i] = 0;
    }
    state[at + 1] = total;
  }
  state[at] = slot;
  return state[at + 1];
}

/** Units admitted in the current slot (call advance first). */
export function slotUnits(state: Uint32Array, at: number): number {
  return state[at + 2 + (state[at] % RING)];
}

/** Adds `cost` units to the current slot (call advance first). */
export function add(state: Uint32Array, at: number, cost: number): void {
  state[at + 2 + (state[at] % RING)] += cost;
  state[at + 1] += cost;
}

/** Whether the window is empty at `nowMs` (every unit in it has expired), without changing it. */
export function isIdle(state: Uint32Array, at: number, shape: WindowShape, nowMs: number): boolean {
  return state[at + 1] === 0 || slotAt(shape, nowMs) - state[at] >= RING;
}

/**
 * Milliseconds from `nowMs` until the window holds at most `limit - need` units, that is until a
 * request of cost `need` fits (0 if it fits now; the whole window plus a slot if it never fits
 * because need > limit). Call advance first.
 */
export function msUntilFits(state: Uint32Array, at: number, shape: WindowShape, nowMs: number, limit: number, need: number): number {
  const head = state[at];
  let used = state[at + 1];
  if (used + need <= limit) return 0;
  if (need > limit) return shape.periodMs + shape.slotMs;
  for (let s = Math.max(0, head - SLOTS); s <= head; s++) {
    used -= state[at + 2 + (s % RING)];
    // Slot s leaves the window when slot s + RING begins.
    if (used + need <= limit) return slotStart(shape, s + RING) - nowMs;
  }
  return slotStart(shape, head + RING) - nowMs;
}

/**
 * Milliseconds from `nowMs` until every unit in the window has expired (0 when it is empty),
 * counting units about to be added to the current slot when `adding` (call advance first).
 */
export function msUntilEmpty(state: Uint32Array, at: number, shape: WindowShape, nowMs: number, adding = false): number {
  const head = state[at];
  if (adding) return slotStart(shape, head + RING) - nowMs;
  if (state[at + 1] === 0) return 0;
  for (let s = head; s >= Math.max(0, head - SLOTS); s--) {
    if (state[at + 2 + (s % RING)] !== 0) return Math.max(0, slotStart(shape, s + RING) - nowMs);
  }
  return 0;
}
