/**
 * Fuzzes the hot-path Check codec (src/api/check-codec.ts) with seeded byte mutations of real
 * requests (fast-check, fixed seeds, a few seconds): in process against protobuf-es, and through a
 * real server over gRPC. Every mutated request is answered with a reason or INVALID_ARGUMENT, never
 * INTERNAL, never a crash, and nothing is allowed that the policy does not allow.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { AuthService } from "../../gen/verdict/v1/auth_pb.js";
import { type CheckRequest, CheckRequestSchema, CheckResponseSchema } from "../../gen/verdict/v1/decision_pb.js";
import { Reason } from "../../gen/verdict/v1/types_pb.js";
import { decodeCheckRequest } from "../../src/api/check-codec.js";
import { WireError } from "../../src/api/protowire.js";
import { grpcClient } from "../helpers/grpc.js";
import { type RawGrpcClient, rawGrpcClient } from "../helpers/raw-grpc.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const ROOT = { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString("base64")}` };
const CHECK = "/verdict.v1.DecisionService/Check";

/** One edit of a byte string; applied in order, each to the result of the previous one. */
type Mutation =
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
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
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

function mutate(seed: Uint8Array, edits: readonly Mutation[]): Buffer {
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

/** protobuf-es's reading of the bytes, or undefined when it refuses them. */
function reference(bytes: Buffer): CheckRequest | undefined {
  try {
    return fromBinary(CheckRequestSchema, bytes);
  } catch {
    return undefined;
  }
}

const encode = (credential: string, action: string, tenant: string, minVersion = 0n) =>
  toBinary(CheckRequestSchema, create(CheckRequestSchema, { credential, action, tenant, minVersion }));

describe("Check codec fuzz", () => {
  it("decodes every mutated request as protobuf-es does, or refuses it with a WireError", () => {
    const seeds = [
      encode("vk_abcdefghijkl_0123456789abcdefghijklmnopqrstuvwxyz", "read:orders", "acme", 7n),
      encode("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln", "write:*", "initech"),
      encode("", "", ""),
    ];
    fc.assert(
      fc.property(fc.constantFrom(...seeds), fc.array(mutation, { minLength: 1, maxLength: 5 }), (seed, edits) => {
        const bytes = mutate(seed, edits);
        let ours: CheckRequest;
        try {
          ours = decodeCheckRequest(bytes);
        } catch (error) {
          expect(error).toBeInstanceOf(WireError);
          return;
        }
        const theirs = reference(bytes);
        if (theirs === undefined) return;
        const { $unknown: _unknown, ...known } = theirs;
        expect({ ...ours, minVersion: 0n }).toEqual({ ...known, minVersion: 0n });
        expect(ours.minVersion).toBe(theirs.minVersion > BigInt(Number.MAX_SAFE_INTEGER) ? BigInt(Number.MAX_SAFE_INTEGER) : theirs.minVersion);
      }),
      { seed: 20261129, numRuns: 20_000 },
    );
  });

  describe("through a real server", () => {
    const schema = freshSchema();
    let v: Awaited<ReturnType<typeof startTestVerdict>>;
    let raw: RawGrpcClient;
    let key = "";
    let token = "";

    beforeAll(async () => {
      v = await startTestVerdict({ DATABASE_URL: TEST_DATABASE_URL, VERDICT_MIN_VERSION_WAIT_MS: "0" }, schema);
      raw = rawGrpcClient(v.grpcAddress);
      const admin = grpcClient(AdminService, v.grpcAddress);
      const auth = grpcClient(AuthService, v.grpcAddress);
      try {
        for (const id of ["acme", "initech"]) await admin.createTenant({ id }, ROOT);
        await admin.putRole({ name: "order-reader", permissions: ["read:orders"] }, ROOT);
        await admin.createUser({ username: "alice", password: "alice-password-1" }, ROOT);
        await admin.bindRole({ tenant: "acme", user: "alice", role: "order-reader" }, ROOT);
        key = (await admin.createApiKey({ name: "alice-ci", owner: "alice" }, ROOT)).secret;
        token = (await auth.login({ username: "alice", password: "alice-password-1", tenant: "" })).tokens!.accessToken;
      } finally {
        admin.close();
        auth.close();
      }
    });
    afterAll(async () => {
      raw?.close();
      await v?.close();
      await dropSchema(schema);
    });

    /** The one thing the policy allows: alice's key or token reading orders in acme. */
    const mayBeAllowed = (r: CheckRequest | undefined) => r !== undefined && (r.credential === key || r.credential === token) && r.action === "read:orders" && r.tenant === "acme";

    it("answers every mutated Check with a reason or INVALID_ARGUMENT, and allows nothing the policy does not", async () => {
      const cases = [key, token].flatMap((credential): Array<[Uint8Array, boolean]> => [
        [encode(credential, "read:orders", "acme"), true],
        [encode(credential, "write:orders", "acme"), false],
        [encode(credential, "read:orders", "initech"), false],
        [encode(credential, "read:orders", "acme", 1n << 40n), false],
      ]);
      for (const [seed, allowed] of cases) {
        const answer = await raw.unary(CHECK, Buffer.from(seed));
        expect(answer.code).toBe(status.OK);
        expect(fromBinary(CheckResponseSchema, answer.response!).allowed).toBe(allowed);
      }
      const seeds = cases.map(([seed]) => seed);
      const seen = { allowed: 0, denied: 0, invalid: 0 };
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...seeds), fc.array(mutation, { minLength: 1, maxLength: 4 }), async (seed, edits) => {
          const bytes = mutate(seed, edits);
          const answer = await raw.unary(CHECK, bytes);
          if (answer.code === status.INVALID_ARGUMENT) {
            seen.invalid++;
            return;
          }
          expect(answer.code, `${status[answer.code]} ${answer.details} for ${bytes.toString("hex")}`).toBe(status.OK);
          const response = fromBinary(CheckResponseSchema, answer.response!);
          expect(response.reason).not.toBe(Reason.UNSPECIFIED);
          expect(response.reason).not.toBe(Reason.INTERNAL_ERROR);
          if (response.allowed) {
            seen.allowed++;
            expect(mayBeAllowed(reference(bytes)), `allowed ${bytes.toString("hex")}`).toBe(true);
          } else {
            seen.denied++;
          }
        }),
        { seed: 8_11_2026, numRuns: 1500 },
      );
      // The mutations reach every outcome, so the property was not checked vacuously.
      expect(seen.allowed).toBeGreaterThan(0);
      expect(seen.denied).toBeGreaterThan(0);
      expect(seen.invalid).toBeGreaterThan(0);
      // The server is alive and still decides correctly.
      const after = await raw.unary(CHECK, Buffer.from(encode(key, "read:orders", "acme")));
      expect(fromBinary(CheckResponseSchema, after.response!).allowed).toBe(true);
    });
  });
});
