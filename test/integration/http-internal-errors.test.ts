/**
 * A 500 never carries internal details: whatever a handler (or connect-es itself) raises with code
 * internal, unknown or data loss reaches the client of the HTTP port as "internal error" in every
 * protocol served there, and the message goes to the server's log. Against a real HTTP server.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { createLogger } from "../../src/observability/logger.js";
import { type RunningHttpServer, startHttpServer } from "../../src/server/http-server.js";
import { envelope, grpcStatusOf, post } from "../helpers/http-protocols.js";

const SECRET = "connection to postgres://verdict:hunter2@10.0.0.5:5432 refused";
const CODES: Record<string, Code> = { internal: Code.Internal, unknown: Code.Unknown, data_loss: Code.DataLoss };

describe("internal errors on the HTTP port", () => {
  const lines: string[] = [];
  let server: RunningHttpServer;
  let base = "";

  beforeAll(async () => {
    server = await startHttpServer({
      addr: { host: "127.0.0.1", port: 0 },
      services: [
        {
          service: Health,
          implementation: {
            check(request: { service: string }) {
              if (request.service === "plain") throw new Error(SECRET);
              throw new ConnectError(SECRET, CODES[request.service]);
            },
          },
        } as never,
      ],
      metrics: { contentType: "text/plain", metrics: async () => "" },
      ready: () => true,
      maxRequestBytes: 65_536,
      logger: createLogger("info", {}, (line) => void lines.push(line)),
    });
    base = `http://127.0.0.1:${server.port}`;
  });
  afterAll(() => server?.close(100));

  /** HealthCheckRequest{service} in protobuf binary. */
  const checkRequest = (service: string) => Buffer.concat([Buffer.from([0x0a, service.length]), Buffer.from(service)]);

  it.each(["internal", "unknown", "data_loss", "plain"])("%s: the error reaches the client as 'internal error' over Connect, gRPC-web and gRPC, and the log as it was", async (kind) => {
    const path = "/grpc.health.v1.Health/Check";
    for (const [type, body] of [
      ["application/json", JSON.stringify({ service: kind })],
      ["application/proto", checkRequest(kind)],
    ] as const) {
      const answer = await post(base, path, { "content-type": type }, body);
      expect(answer.status, `${type}: ${answer.body.toString()}`).toBe(500);
      expect(JSON.parse(answer.body.toString())).toEqual({ code: kind === "plain" ? "internal" : kind, message: "internal error" });
    }
    const grpcHeaders: Array<Record<string, string>> = [{ "content-type": "application/grpc-web+proto" }, { "content-type": "application/grpc+proto", te: "trailers" }];
    for (const headers of grpcHeaders) {
      const answer = await post(base, path, headers, envelope(checkRequest(kind)));
      expect(grpcStatusOf(answer)).toEqual({ code: kind === "plain" ? status.INTERNAL : CODES[kind], message: "internal error" });
      expect(answer.body.toString()).not.toContain("hunter2");
    }
    if (kind !== "plain") expect(lines.filter((l) => l.includes("hunter2")).length, lines.join("\n")).toBeGreaterThan(0);
  });
});
