import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { decodeCheckRequest, encodeCheckResponse } from "../../src/api/check-codec.js";
import { WireError } from "../../src/api/protowire.js";
import { CheckRequestSchema, CheckResponseSchema } from "../../gen/verdict/v1/decision_pb.js";
import { PrincipalSchema, RateLimitStatusSchema } from "../../gen/verdict/v1/types_pb.js";

let seed = 42;
const rand = (n: number) => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed % n;
};
const ALPHABET = ["a", "Z", "0", ":", "_", "é", "漢", "🙂", "\u0000"];
const str = (max: number) => Array.from({ length: rand(max) }, () => ALPHABET[rand(ALPHABET.length)]).join("");
const big = () => [0n, 1n, 127n, 128n, 300n, 16384n, 2n ** 31n, 2n ** 35n + 7n, BigInt(Number.MAX_SAFE_INTEGER)][rand(9)];

describe("check codec", () => {
  it("decodes requests exactly as protobuf-es does", () => {
    for (let i = 0; i < 500; i++) {
      const msg = create(CheckRequestSchema, { credential: str(80), action: str(40), tenant: str(20), minVersion: big() });
      const cost = [undefined, 0, 1, 5, 300, 2 ** 32 - 1][rand(6)];
      if (cost !== undefined) msg.cost = cost;
      const decoded = decodeCheckRequest(Buffer.from(toBinary(CheckRequestSchema, msg)));
      expect(decoded).toEqual(msg);
      expect(decoded.cost).toBe(cost);
      expect("cost" in decoded).toBe(cost !== undefined);
    }
  });

  it("encodes responses to the same bytes as protobuf-es", () => {
    const principals = [
      undefined,
      create(PrincipalSchema, { kind: 2, userId: "u-1", username: "alice", keyId: "abcdefghijkl", tenant: "acme", roles: ["READ", "x"] }),
      create(PrincipalSchema, {}),
    ];
    const u32 = () => [0, 1, 127, 128, 1000, 16_384, 1_000_000_000, 2 ** 32 - 1][rand(8)];
    const rateLimits = () =>
      [undefined, create(RateLimitStatusSchema, {}), create(RateLimitStatusSchema, { limit: u32(), remaining: u32(), resetSeconds: u32(), scope: rand(6), window: rand(4) })][rand(3)];
    for (let i = 0; i < 500; i++) {
      const msg = create(CheckResponseSchema, {
        allowed: rand(2) === 1,
        reason: rand(21),
        message: str(60),
        principal: principals[rand(3)],
        policyVersion: big(),
        decisionId: str(30),
        rateLimit: rateLimits(),
      });
      const ours = encodeCheckResponse(msg);
      expect(Buffer.from(ours).equals(Buffer.from(toBinary(CheckResponseSchema, msg)))).toBe(true);
      expect(fromBinary(CheckResponseSchema, ours)).toEqual(msg);
    }
  });

  it("skips unknown fields of every wire type and keeps the last repeated value", () => {
    const known = Buffer.from(toBinary(CheckRequestSchema, create(CheckRequestSchema, { credential: "c1", action: "read:x", tenant: "t" })));
    const extra = Buffer.from([
      0x78, 0x96, 0x01, // field 15 varint
      0x81, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, // field 16 fixed64
      0x8a, 0x01, 3, 9, 9, 9, // field 17 len
      0x95, 0x01, 1, 2, 3, 4, // field 18 fixed32
      0x0a, 2, 0x63, 0x32, // credential again: "c2"
    ]);
    const decoded = decodeCheckRequest(Buffer.concat([known, extra]));
    expect(decoded).toMatchObject({ credential: "c2", action: "read:x", tenant: "t" });
    expect(fromBinary(CheckRequestSchema, Buffer.concat([known, extra])).credential).toBe("c2");
  });

  it.each([
    ["truncated string", [0x0a, 5, 0x61]],
    ["truncated varint", [0x20, 0x80]],
    ["wrong wire type for a string", [0x08, 1]],
    ["wrong wire type for min_version", [0x22, 0]],
    ["wrong wire type for cost", [0x2a, 0]],
    ["field 0", [0x00, 1]],
    ["group wire type", [0x0b]],
    ["truncated unknown field", [0x8a, 0x01, 10, 1]],
  ])("rejects %s", (_name, bytes) => {
    expect(() => decodeCheckRequest(Buffer.from(bytes))).toThrow(WireError);
  });
});
