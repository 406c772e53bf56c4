/**
 * Verdict's client package (`import { createVerdictClient } from "verdict/client"`): typed clients
 * for Check, CheckBatch, the Admin and Auth services and health, over gRPC (@grpc/grpc-js, the
 * decision hot path) or over Connect (HTTP, what browsers and curl use), with the caller's
 * credential given once at creation.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Client, type Interceptor, type Transport, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { credentials as grpcCredentials } from "@grpc/grpc-js";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { AuthService } from "../../gen/verdict/v1/auth_pb.js";
import {
  type CheckBatchRequestSchema,
  type CheckBatchResponse,
  type CheckRequestSchema,
  type CheckResponse,
  DecisionService,
} from "../../gen/verdict/v1/decision_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { createGrpcTransport } from "./grpc-transport.js";

export * from "../../gen/verdict/v1/types_pb.js";
export * from "../../gen/verdict/v1/decision_pb.js";
export * from "../../gen/verdict/v1/admin_pb.js";
export * from "../../gen/verdict/v1/auth_pb.js";
export { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
export { Code, ConnectError } from "@connectrpc/connect";

/** How the client proves who it is to Verdict (sent with every call). */
export type VerdictCredentials =
  | { readonly apiKey: string }
  | { readonly token: string }
  | { readonly username: string; readonly password: string };

/** Where Verdict is and who is calling. */
export interface VerdictClientOptions {
  /**
   * `grpc://host:50051` (plain gRPC), `grpcs://host:50051` (gRPC over TLS), or
   * `http://host:8080` / `https://...` (the Connect protocol over HTTP/1.1).
   */
  readonly url: string;
  /** The caller's own credential, for the admin RPCs and for Check when callers must identify. */
  readonly credentials?: VerdictCredentials;
  /** Deadline of every call in milliseconds (default 10000; 0: none). */
  readonly timeoutMs?: number;
}

/** Typed clients for every Verdict service, plus the two decision calls at the top. */
export interface VerdictClient {
  /** May `credential` do `action` in `tenant`? A denial is an answer (allowed false, a reason). */
  check(request: MessageInitShape<typeof CheckRequestSchema>): Promise<CheckResponse>;
  /** Decides several actions for one credential in one tenant. */
  checkBatch(request: MessageInitShape<typeof CheckBatchRequestSchema>): Promise<CheckBatchResponse>;
  readonly decision: Client<typeof DecisionService>;
  readonly admin: Client<typeof AdminService>;
  readonly auth: Client<typeof AuthService>;
  readonly health: Client<typeof Health>;
  /** The transport the clients share ("grpc" or "connect"). */
  readonly protocol: "grpc" | "connect";
  /** Closes the gRPC channel (a no-op over Connect). */
  close(): void;
}

/** The request headers that carry `credentials`. */
export function credentialHeaders(credentials: VerdictCredentials | undefined): Record<string, string> {
  if (!credentials) return {};
  if ("apiKey" in credentials) return { "x-api-key": credentials.apiKey };
  if ("token" in credentials) return { authorization: `Bearer ${credentials.token}` };
  return { authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`, "utf8").toString("base64")}` };
}

function parseUrl(url: string): URL {
  try {
    return new URL(url);
  } catch {
    throw new TypeError(`not a Verdict URL: ${JSON.stringify(url)} (expected grpc://host:port, grpcs://host:port, http://host:port or https://host:port)`);
  }
}

/** Creates clients for the Verdict at `options.url`. */
export function createVerdictClient(options: VerdictClientOptions): VerdictClient {
  const url = parseUrl(options.url);
  const headers = credentialHeaders(options.credentials);
  const timeoutMs = options.timeoutMs ?? 10_000;
  let transport: Transport;
  let close = () => {};
  let protocol: VerdictClient["protocol"];
  if (url.protocol === "grpc:" || url.protocol === "grpcs:") {
    if (url.port === "") throw new TypeError(`a gRPC URL needs a port: ${options.url}`);
    const channel = url.protocol === "grpcs:" ? grpcCredentials.createSsl() : grpcCredentials.createInsecure();
    const grpc = createGrpcTransport(url.host, channel, headers);
    transport = grpc;
    close = () => grpc.close();
    protocol = "grpc";
  } else if (url.protocol === "http:" || url.protocol === "https:") {
    const withCredentials: Interceptor = (next) => (req) => {
      for (const [key, value] of Object.entries(headers)) req.header.set(key, value);
      return next(req);
    };
    transport = createConnectTransport({ baseUrl: url.href.replace(/\/$/, ""), httpVersion: "1.1", useBinaryFormat: true, interceptors: [withCredentials] });
    protocol = "connect";
  } else {
    throw new TypeError(`unsupported scheme ${url.protocol} in ${options.url} (expected grpc:, grpcs:, http: or https:)`);
  }
  const withDeadline = <T extends object>(client: T): T => {
    if (timeoutMs <= 0) return client;
    const wrapped: Record<string, unknown> = {};
    for (const [name, fn] of Object.entries(client)) {
      wrapped[name] = (request: unknown, callOptions: { timeoutMs?: number } = {}) =>
        (fn as (r: unknown, o: unknown) => unknown)(request, { timeoutMs, ...callOptions });
    }
    return wrapped as T;
  };
  const decision = withDeadline(createClient(DecisionService, transport));
  return {
    check: (request) => decision.check(request),
    checkBatch: (request) => decision.checkBatch(request),
    decision,
    admin: withDeadline(createClient(AdminService, transport)),
    auth: withDeadline(createClient(AuthService, transport)),
    health: withDeadline(createClient(Health, transport)),
    protocol,
    close,
  };
}
