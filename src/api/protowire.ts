/**
 * The few protobuf wire-format primitives the hand-written hot-path codecs share (check-codec.ts
 * for Verdict's Check, envoy/wire.ts for Envoy's ext_authz).
 */

/** Thrown for bytes that are not a valid message. */
export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WireError";
  }
}

/** A position in a buffer being read or written. */
export interface Cursor {
  readonly buf: Buffer;
  pos: number;
}

/** Reads a varint (up to 2^53 exactly) that must end before `end`. */
export function readVarint(c: Cursor, end: number): number {
  let result = 0;
  let shift = 0;
  while (c.pos < end) {
    const b = c.buf[c.pos++];
    if (shift < 28) result |= (b & 0x7f) << shift;
    else if (shift < 64) result += (b & 0x7f) * 2 ** shift;
    else throw new WireError("varint longer than 10 bytes");
    if (b < 0x80) return result;
    shift += 7;
  }
  throw new WireError("truncated varint");
}

/** Bytes a varint of `n` (a non-negative integer up to 2^53) takes. */
export function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    size++;
  }
  return size;
}

/** Writes `n` (a non-negative integer up to 2^53) as a varint. */
export function writeVarint(w: Cursor, n: number): void {
  while (n >= 0x80) {
    w.buf[w.pos++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  w.buf[w.pos++] = n;
}
