/**
 * Seeded byte mutations for codec fuzz tests (fast-check): edits that keep a message looking like
 * protobuf often enough to reach deep into a decoder, and break it in every other way.
 */
import fc from "fast-check";

/** One edit of a byte string; applied in order, each to the result of the previous one. */
export type Mutation =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "set"; at: number; value: number }
  | { kind: "insert"; at: number; bytes: readonly number[] }
  | { kind: "delete"; at: number; count: number }
  | { kind: "truncate"; at: number }
  | { kind: "duplicate"; at: number; count: number }
  | { kind: "append"; bytes: readonly number[] }
  | { kind: "unknown"; at: number; field: number; value: readonly number[] };

const byte = fc.integer({ min: 0, max: 255 });
const position = fc.nat({ max: 1 << 16 });
/** Bytes that look like protobuf: tags of fields 0 to 6 with every wire type, long varints. */
const wireish = fc.oneof(
  fc.array(byte, { minLength: 1, maxLength: 12 }),
  fc.tuple(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 7 }), fc.array(byte, { maxLength: 10 })).map(([f, w, rest]) => [(f << 3) | w, ...rest]),
  fc.constantFrom([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], [0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
);

/** Any one mutation. */
export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: position, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("set" as const), at: position, value: byte }),
  fc.record({ kind: fc.constant("insert" as const), at: position, bytes: wireish }),
  fc.record({ kind: fc.constant("delete" as const), at: position, count: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant("truncate" as const), at: position }),
  fc.record({ kind: fc.constant("duplicate" as const), at: position, count: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant("append" as const), bytes: wireish }),
  fc.record({ kind: fc.constant("unknown" as const), at: position, field: fc.integer({ min: 5, max: 2000 }), value: fc.array(byte, { maxLength: 20 }) }),
);

/** A well-formed length-delimited field with a number the request does not define. */
function unknownField(field: number, value: readonly number[]): Buffer {
  const varint = (n: number) => {
    const out: number[] = [];
    for (; n > 127; n >>>= 7) out.push((n & 127) | 128);
    return [...out, n];
  };
  return Buffer.from([...varint((field << 3) | 2), ...varint(value.length), ...value]);
}

/** `seed` with `edits` applied. */
export function mutate(seed: Uint8Array, edits: readonly Mutation[]): Buffer {
  let b = Buffer.from(seed);
  for (const m of edits) {
    const at = b.length === 0 ? 0 : m.kind === "append" || m.kind === "unknown" ? b.length : m.at % (b.length + 1);
    switch (m.kind) {
      case "flip":
        if (at < b.length) b[at] ^= 1 << m.bit;
        break;
      case "set":
        if (at < b.length) b[at] = m.value;
        break;
      case "insert":
      case "append":
        b = Buffer.concat([b.subarray(0, at), Buffer.from(m.bytes), b.subarray(at)]);
        break;
      case "delete":
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.count)]);
        break;
      case "unknown":
        b = Buffer.concat([b, unknownField(m.field, m.value)]);
        break;
      case "truncate":
        b = b.subarray(0, at);
        break;
      case "duplicate":
        b = Buffer.concat([b.subarray(0, at + m.count), b.subarray(at)]);
        break;
    }
  }
  return b;
}
