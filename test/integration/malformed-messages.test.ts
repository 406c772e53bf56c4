/**
 * Every gRPC method answers a message that does not decode with INVALID_ARGUMENT (never grpc-js's
 * INTERNAL "Error deserializing request"), against a real server on the machine's Postgres.
 */
import type { DescService } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { AuthService } from "../../gen/verdict/v1/auth_pb.js";
import { DecisionService } from "../../gen/verdict/v1/decision_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { type RawGrpcClient, rawGrpcClient } from "../helpers/raw-grpc.js";
import { TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

/** Bytes no protobuf message decodes from, each for a different reason. */
const MALFORMED: Record<string, Buffer> = {
  "truncated length-delimited field": Buffer.from([0x0a, 0x05, 0x61]),
  "field number 0": Buffer.from([0x00, 0x01]),
  "unterminated varint": Buffer.from([0x20, 0xff, 0xff, 0xff]),
  "wire type 7": Buffer.from([0x0f]),
};

const unaryPaths = (service: DescService) => service.methods.filter((m) => m.methodKind === "unary").map((m) => `/${service.typeName}/${m.name}`);

describe("malformed request messages", () => {
  const schema = freshSchema();
  let v: Awaited<ReturnType<typeof startTestVerdict>>;
  let raw: RawGrpcClient;

  beforeAll(async () => {
    v = await startTestVerdict({ DATABASE_URL: TEST_DATABASE_URL }, schema);
    raw = rawGrpcClient(v.grpcAddress);
  });
  afterAll(async () => {
    raw?.close();
    await v?.close();
    await dropSchema(schema);
  });

  it("answers INVALID_ARGUMENT on every unary method of every service", async () => {
    const paths = [DecisionService, AdminService, AuthService, Health].flatMap(unaryPaths);
    expect(paths).toContain("/verdict.v1.DecisionService/Check");
    expect(paths).toContain("/verdict.v1.DecisionService/CheckBatch");
    const wrong: string[] = [];
    for (const path of paths) {
      for (const [why, bytes] of Object.entries(MALFORMED)) {
        const outcome = await raw.unary(path, bytes);
        if (outcome.code !== status.INVALID_ARGUMENT) wrong.push(`${path} (${why}): ${status[outcome.code]} ${outcome.details}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("answers INVALID_ARGUMENT on the streaming health Watch", async () => {
    for (const bytes of Object.values(MALFORMED)) {
      const outcome = await raw.serverStreamFirst("/grpc.health.v1.Health/Watch", bytes);
      expect(outcome.code, outcome.details).toBe(status.INVALID_ARGUMENT);
    }
  });

  it("answers invalid_argument to malformed Connect JSON bodies over HTTP", async () => {
    const bodies: Array<[string, string]> = [
      ["application/json", "{not json"],
      ["application/json", "[1]"],
    ];
    for (const path of [DecisionService, AdminService, AuthService, Health].flatMap(unaryPaths)) {
      for (const [type, body] of bodies) {
        const res = await fetch(`${v.httpBase}${path}`, { method: "POST", headers: { "content-type": type }, body });
        expect(res.status, `${path} ${type} ${body}`).toBe(400);
        expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");
      }
    }
  });

  it("still answers well-formed messages", async () => {
    const ok = await raw.unary("/verdict.v1.DecisionService/Check", Buffer.from([0x0a, 0x01, 0x78, 0x12, 0x0b, ...Buffer.from("read:orders")]));
    expect(ok.code).toBe(status.OK);
    expect(ok.response!.length).toBeGreaterThan(0);
  });
});
