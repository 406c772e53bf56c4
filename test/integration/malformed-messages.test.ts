/**
 * Every method answers a message that does not decode with INVALID_ARGUMENT and the reason, against
 * a real server on the machine's Postgres: on the gRPC port (never grpc-js's INTERNAL "Error
 * deserializing request") and on the HTTP port in every protocol connect-node serves there (Connect
 * binary and JSON, gRPC-web, gRPC over HTTP/1.1; connect-es itself answers a binary message that
 * does not decode with INTERNAL, HTTP 500).
 */
import type { DescService } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { AuthService } from "../../gen/verdict/v1/auth_pb.js";
import { DecisionService } from "../../gen/verdict/v1/decision_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { Authorization } from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import { endStreamError, envelope, grpcStatusOf, post } from "../helpers/http-protocols.js";
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

/** The reason a malformed message is refused with: its type and the decoder's complaint. */
const MALFORMED_REASON = /^malformed [a-z0-9.]+\.[A-Za-z]+ message: \S/;

describe("malformed request messages", () => {
  const schema = freshSchema();
  let v: Awaited<ReturnType<typeof startTestVerdict>>;
  let raw: RawGrpcClient;
  const allUnaryPaths = () => [DecisionService, AdminService, AuthService, Health].flatMap(unaryPaths);

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
    const paths = [DecisionService, AdminService, AuthService, Health, Authorization].flatMap(unaryPaths);
    expect(paths).toContain("/verdict.v1.DecisionService/Check");
    expect(paths).toContain("/verdict.v1.DecisionService/CheckBatch");
    const wrong: string[] = [];
    for (const path of paths) {
      for (const [why, bytes] of Object.entries(MALFORMED)) {
        const outcome = await raw.unary(path, bytes);
        // The same reason the HTTP port gives: the type and the decoder's complaint.
        if (outcome.code !== status.INVALID_ARGUMENT || !MALFORMED_REASON.test(outcome.details)) wrong.push(`${path} (${why}): ${status[outcome.code]} ${outcome.details}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("answers INVALID_ARGUMENT on the streaming health Watch", async () => {
    for (const bytes of Object.values(MALFORMED)) {
      const outcome = await raw.serverStreamFirst("/grpc.health.v1.Health/Watch", bytes);
      expect(outcome.code, outcome.details).toBe(status.INVALID_ARGUMENT);
      expect(outcome.details).toMatch(MALFORMED_REASON);
    }
  });

  it("answers invalid_argument to malformed Connect JSON bodies over HTTP", async () => {
    const bodies: Array<[string, string]> = [
      ["application/json", "{not json"],
      ["application/json", "[1]"],
    ];
    for (const path of allUnaryPaths()) {
      for (const [type, body] of bodies) {
        const res = await fetch(`${v.httpBase}${path}`, { method: "POST", headers: { "content-type": type }, body });
        expect(res.status, `${path} ${type} ${body}`).toBe(400);
        expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");
      }
    }
  });

  it("answers invalid_argument (400) with the reason to malformed Connect binary bodies over HTTP, compressed or not", async () => {
    const wrong: string[] = [];
    for (const path of allUnaryPaths()) {
      const bodies: Array<[string, Record<string, string>, Buffer]> = Object.entries(MALFORMED).map(([why, bytes]) => [why, {}, bytes]);
      bodies.push(["gzip, wire type 7", { "content-encoding": "gzip" }, gzipSync(MALFORMED["wire type 7"])]);
      for (const [why, headers, bytes] of bodies) {
        const answer = await post(v.httpBase, path, { "content-type": "application/proto", ...headers }, bytes);
        const error = answer.headers["content-type"] === "application/json" ? (JSON.parse(answer.body.toString()) as { code: string; message: string }) : undefined;
        if (answer.status !== 400 || error?.code !== "invalid_argument" || !MALFORMED_REASON.test(error.message)) {
          wrong.push(`${path} (${why}): ${answer.status} ${answer.body.toString()}`);
        }
      }
    }
    expect(wrong).toEqual([]);
  });

  it("answers INVALID_ARGUMENT with the reason to malformed gRPC-web and gRPC (over HTTP/1.1) messages on the HTTP port", async () => {
    const wrong: string[] = [];
    for (const path of allUnaryPaths()) {
      for (const [why, bytes] of Object.entries(MALFORMED)) {
        for (const [protocol, headers] of [
          ["grpc-web", { "content-type": "application/grpc-web+proto" }],
          ["grpc", { "content-type": "application/grpc+proto", te: "trailers" }],
        ] as const) {
          const answer = await post(v.httpBase, path, headers, envelope(bytes));
          const { code, message } = grpcStatusOf(answer);
          if (answer.status !== 200 || code !== status.INVALID_ARGUMENT || !MALFORMED_REASON.test(message)) wrong.push(`${path} ${protocol} (${why}): ${answer.status} ${code} ${message}`);
        }
      }
    }
    expect(wrong).toEqual([]);
    // An envelope flagged compressed, from a client that named no compression.
    const flagged = grpcStatusOf(await post(v.httpBase, "/verdict.v1.DecisionService/Check", { "content-type": "application/grpc-web+proto" }, envelope(Buffer.from([0x0a, 0x01, 0x78]), 1)));
    expect(flagged.code, flagged.message).toBe(status.INVALID_ARGUMENT);
    // Malformed JSON inside gRPC-web.
    expect(grpcStatusOf(await post(v.httpBase, "/verdict.v1.DecisionService/Check", { "content-type": "application/grpc-web+json" }, envelope(Buffer.from("{not json")))).code).toBe(status.INVALID_ARGUMENT);
  });

  it("answers invalid_argument to a malformed message on the streaming health Watch over HTTP (Connect streaming, gRPC-web)", async () => {
    for (const bytes of Object.values(MALFORMED)) {
      const connect = endStreamError(await post(v.httpBase, "/grpc.health.v1.Health/Watch", { "content-type": "application/connect+proto" }, envelope(bytes)));
      expect(connect?.code, connect?.message).toBe("invalid_argument");
      expect(connect?.message).toMatch(MALFORMED_REASON);
      const web = grpcStatusOf(await post(v.httpBase, "/grpc.health.v1.Health/Watch", { "content-type": "application/grpc-web+proto" }, envelope(bytes)));
      expect(web.code, web.message).toBe(status.INVALID_ARGUMENT);
    }
  });

  it("still answers well-formed binary messages over HTTP", async () => {
    const check = Buffer.from([0x0a, 0x01, 0x78, 0x12, 0x0b, ...Buffer.from("read:orders")]);
    const connect = await post(v.httpBase, "/verdict.v1.DecisionService/Check", { "content-type": "application/proto" }, check);
    expect(connect.status).toBe(200);
    expect(connect.headers["content-type"]).toBe("application/proto");
    expect(connect.body.length).toBeGreaterThan(0);
    const web = await post(v.httpBase, "/verdict.v1.DecisionService/Check", { "content-type": "application/grpc-web+proto" }, envelope(check));
    expect(grpcStatusOf(web).code).toBe(status.OK);
    expect(web.body[0]).toBe(0);
    const grpc = await post(v.httpBase, "/verdict.v1.DecisionService/Check", { "content-type": "application/grpc+proto", te: "trailers" }, envelope(check));
    expect(grpcStatusOf(grpc).code).toBe(status.OK);
    expect(grpc.body.length).toBeGreaterThan(5);
  });

  it("still answers well-formed messages", async () => {
    const ok = await raw.unary("/verdict.v1.DecisionService/Check", Buffer.from([0x0a, 0x01, 0x78, 0x12, 0x0b, ...Buffer.from("read:orders")]));
    expect(ok.code).toBe(status.OK);
    expect(ok.response!.length).toBeGreaterThan(0);
  });
});
