/**
 * The gRPC server (@grpc/grpc-js): the hot path. Messages are (de)serialised with protobuf-es.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Metadata, Server, ServerCredentials, type ServerUnaryCall, type ServerWritableStream, type ServiceDefinition, status } from "@grpc/grpc-js";
import { type AddressInfo, createServer } from "node:net";
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import {
  type HealthCheckRequest,
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  Health,
} from "../../gen/grpc/health/v1/health_pb.js";
import type { ListenAddress } from "../config/config.js";
import type { Logger } from "../observability/logger.js";
import type { HealthState } from "../api/health.js";
import { malformedRequest, toGrpcError } from "../api/errors.js";
import { type GrpcService, toGrpcService } from "../api/rpc.js";
import { createRequestDeadline } from "./request-deadline.js";
import { type FastLane, type FastMethod, createFastLane } from "./fast-lane.js";

/** A running gRPC server. */
export interface RunningGrpcServer {
  readonly port: number;
  /** Stops accepting calls, lets running ones finish for up to `graceMs`, then forces. */
  close(graceMs: number): Promise<void>;
}

/** Settings of the gRPC server. */
export interface GrpcServerOptions {
  readonly addr: ListenAddress;
  readonly services: readonly GrpcService[];
  readonly health: HealthState;
  /** Response metadata every Health.Check answer carries (which worker answered on a connection). */
  readonly healthMetadata?: Readonly<Record<string, string>>;
  readonly maxRequestBytes: number;
  /**
   * Paths of unary methods answered by the fast lane (fast-lane.ts) instead of grpc-js's per-call
   * machinery; grpc.health.v1 Health/Check is always on it. Empty: every call goes through grpc-js.
   */
  readonly fastLane?: readonly string[];
  /** HTTP/2 limits: streams per connection, connections, and how long a call's request may take to arrive. */
  readonly limits: { readonly maxConcurrentStreams: number; readonly maxConnections: number; readonly requestTimeoutMs: number };
  /** Called for each connection closed at once because `limits.maxConnections` are open. */
  readonly onConnectionRefused?: () => void;
  /** Called for each call ended because its request did not arrive within `limits.requestTimeoutMs`. */
  readonly onRequestTimeout?: () => void;
  readonly logger: Logger;
}

function healthService(health: HealthState, logger: Logger, metadata: Readonly<Record<string, string>> = {}): GrpcService {
  const { definition, implementation } = toGrpcService(Health, health.handlers(), logger);
  const entries = Object.entries(metadata);
  const check = implementation.check as (call: ServerUnaryCall<unknown, unknown>, callback: unknown) => void;
  const checkWithMetadata = (call: ServerUnaryCall<unknown, unknown>, callback: unknown) => {
    const md = new Metadata();
    for (const [key, value] of entries) md.set(key, value);
    call.sendMetadata(md);
    check(call, callback);
  };
  const watchPath = `/${Health.typeName}/Watch`;
  const watch = (call: ServerWritableStream<Buffer, unknown>) => {
    let request: HealthCheckRequest;
    try {
      request = fromBinary(HealthCheckRequestSchema, call.request);
    } catch (error) {
      call.emit("error", toGrpcError(malformedRequest(HealthCheckRequestSchema.typeName, error)));
      return;
    }
    if (!health.knows(request.service)) {
      call.emit("error", { code: status.NOT_FOUND, details: "unknown service" });
      return;
    }
    const send = () => call.write(create(HealthCheckResponseSchema, { status: health.status }));
    send();
    const stop = health.watch(send);
    call.on("cancelled", stop);
    call.on("close", stop);
  };
  return {
    definition: {
      ...definition,
      watch: {
        path: watchPath,
        requestStream: false,
        responseStream: true,
        requestSerialize: (m: HealthCheckRequest) => Buffer.from(toBinary(HealthCheckRequestSchema, m)),
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (m: never) => Buffer.from(toBinary(HealthCheckResponseSchema, m)),
        responseDeserialize: (b: Buffer) => fromBinary(HealthCheckResponseSchema, b),
      },
    } as unknown as ServiceDefinition,
    implementation: { ...implementation, ...(entries.length > 0 ? { check: checkWithMetadata } : {}), watch },
  };
}

/** grpc-js's per-stream entry points (one is used, by whether channelz is on). */
const STREAM_HANDLERS = ["_streamHandler", "_channelzHandler"] as const;

type StreamHandler = (this: Server, extraInterceptors: unknown, stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void;

/**
 * Puts the fast lane in front of grpc-js's per-stream handler: grpc-js picks that handler (a method
 * of the Server) when a connection injector is created, so this must run before. It is grpc-js's
 * internal API (checked by test/integration/grpc-fast-lane.test.ts, which fails if an upgrade
 * renames it); if it is missing the server refuses to start rather than silently losing the lane.
 */
function installFastLane(server: Server, lane: FastLane): void {
  const target = server as unknown as Record<(typeof STREAM_HANDLERS)[number], StreamHandler>;
  for (const name of STREAM_HANDLERS) {
    const original = target[name];
    if (typeof original !== "function") throw new Error(`@grpc/grpc-js has no ${name}: the gRPC fast lane cannot be installed (set VERDICT_GRPC_FAST_LANE=false)`);
    target[name] = function (this: Server, extraInterceptors, stream, headers) {
      if (!lane.take(stream, headers)) original.call(this, extraInterceptors, stream, headers);
    };
  }
}

/**
 * Starts the gRPC server with the given services plus grpc.health.v1. Connections are accepted by
 * a plain TCP listener that closes those beyond `limits.maxConnections` and hands the others to
 * grpc-js; each advertises `limits.maxConcurrentStreams`, and calls whose request does not arrive
 * are ended (request-deadline.ts).
 */
export async function startGrpcServer(options: GrpcServerOptions): Promise<RunningGrpcServer> {
  const { limits } = options;
  const deadline = createRequestDeadline({ timeoutMs: limits.requestTimeoutMs, onTimeout: options.onRequestTimeout });
  const server = new Server({
    "grpc.max_receive_message_length": options.maxRequestBytes,
    "grpc.max_concurrent_streams": limits.maxConcurrentStreams,
    "grpc.keepalive_time_ms": 60_000,
    "grpc.keepalive_timeout_ms": 20_000,
    "grpc.keepalive_permit_without_calls": 1,
    interceptors: [deadline.interceptor],
  });
  const health = healthService(options.health, options.logger, options.healthMetadata);
  for (const s of [...options.services, health]) {
    server.addService(s.definition, s.implementation);
    // Health answers for every service mounted here: the name is the first part of a method's path.
    for (const m of Object.values(s.definition)) options.health.register(m.path.split("/")[1]);
  }
  if (options.fastLane === undefined || options.fastLane.length > 0) {
    const paths = new Set([...(options.fastLane ?? []), `/${Health.typeName}/Check`]);
    const methods: FastMethod[] = [];
    for (const s of [...options.services, health]) {
      for (const [name, m] of Object.entries(s.definition)) {
        if (!paths.has(m.path) || m.requestStream || m.responseStream) continue;
        methods.push({ path: m.path, handler: s.implementation[name], serialize: m.responseSerialize as (r: unknown) => Buffer });
      }
    }
    const onError = (error: unknown, path: string) => options.logger.error("rpc failed outside its handler", { method: path, error });
    installFastLane(server, createFastLane({ methods, maxRequestBytes: options.maxRequestBytes, deadline, onError }));
  }
  const injector = server.createConnectionInjector(ServerCredentials.createInsecure());
  const listener = createServer((socket) => injector.injectConnection(socket));
  listener.maxConnections = limits.maxConnections;
  listener.on("drop", () => options.onConnectionRefused?.());
  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(options.addr.port, options.addr.host, () => {
      listener.off("error", reject);
      resolve();
    });
  });
  listener.on("error", (error) => options.logger.error("gRPC listener failed", { error }));
  return {
    port: (listener.address() as AddressInfo).port,
    close: (graceMs) =>
      new Promise<void>((resolve) => {
        listener.close();
        const done = () => {
          deadline.close();
          resolve();
        };
        const force = setTimeout(() => {
          server.forceShutdown();
          done();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          done();
        });
      }),
  };
}
