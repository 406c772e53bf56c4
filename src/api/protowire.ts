/**
 * The protobuf wire-format primitives the hand-written hot-path codecs share (check-codec.ts for
 * Verdict's Check, envoy/wire.ts for Envoy's ext_authz): varints, delimited fields, strings and
 * skipping unknown fields, each bounded by the end of the message being read.
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

/** Wire types of protobuf fields. */
/** Reads a field's tag; field number 0 is not valid protobuf (protobuf-es refuses it too). */
export function readTag(c: Cursor, end: number): number {
  const tag = readVarint(c, end);
  if (tag >>> 3 === 0) throw new WireError("field number 0");
  return tag;
}

export const VARINT = 0;
export const FIXED64 = 1;
export const LENGTH_DELIMITED = 2;
export const FIXED32 = 5;

/** Reads a length prefix and returns the end of the field it delimits, which must not pass `end`. */
export function readDelimited(c: Cursor, end: number): number {
  const length = readVarint(c, end);
  const fieldEnd = c.pos + length;
  if (fieldEnd > end) throw new WireError("truncated field");
  return fieldEnd;
}

/** Skips the value of a field of `wireType` that must end before `end`. */
export function skipField(c: Cursor, wireType: number, end: number): void {
  switch (wireType) {
    case VARINT:
      readVarint(c, end);
      return;
    case FIXED64:
      c.pos += 8;
      break;
    case LENGTH_DELIMITED:
      c.pos = readDelimited(c, end);
      return;
    case FIXED32:
      c.pos += 4;
      break;
    default:
      throw new WireError(`unsupported wire type ${wireType}`);
  }
  if (c.pos > end) throw new WireError("truncated field");
}

/** Node's Buffer has decoded with utf8Slice since its first release; toString adds argument checks costing more than short strings do. */
type Utf8Buffer = Buffer & { utf8Slice(start: number, end: number): string };

/** Strings up to this many bytes are decoded in JavaScript when they are ASCII (header names, most values). */
const SHORT_STRING = 32;

/** Decodes `buf[start, end)` as UTF-8 (malformed sequences become U+FFFD). */
export function decodeText(buf: Buffer, start: number, end: number): string {
  if (end - start <= SHORT_STRING) {
    let value = "";
    let i = start;
    for (; i < end && buf[i] < 0x80; i++) value += String.fromCharCode(buf[i]);
    if (i === end) return value;
  }
  return (buf as Utf8Buffer).utf8Slice(start, end);
}

/** Reads a length-delimited string that must end before `end`. */
export function readString(c: Cursor, end: number): string {
  const fieldEnd = readDelimited(c, end);
  const start = c.pos;
  c.pos = fieldEnd;
  return decodeText(c.buf, start, fieldEnd);
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
