/**
 * The gRPC server (@grpc/grpc-js): the hot path. Messages are (de)serialised with protobuf-es.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Server, ServerCredentials, type ServerWritableStream, type ServiceDefinition, status } from "@grpc/grpc-js";
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
  readonly maxRequestBytes: number;
  readonly logger: Logger;
}

function healthService(health: HealthState, logger: Logger): GrpcService {
  const { definition, implementation } = toGrpcService(Health, health.handlers(), logger);
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
    implementation: { ...implementation, watch },
  };
}

/** Starts the gRPC server with the given services plus grpc.health.v1. */
export async function startGrpcServer(options: GrpcServerOptions): Promise<RunningGrpcServer> {
  const server = new Server({
    "grpc.max_receive_message_length": options.maxRequestBytes,
    "grpc.keepalive_time_ms": 60_000,
    "grpc.keepalive_timeout_ms": 20_000,
    "grpc.keepalive_permit_without_calls": 1,
  });
  for (const s of [...options.services, healthService(options.health, options.logger)]) {
    server.addService(s.definition, s.implementation);
    // Health answers for every service mounted here: the name is the first part of a method's path.
    for (const m of Object.values(s.definition)) options.health.register(m.path.split("/")[1]);
  }
  const host = options.addr.host.includes(":") ? `[${options.addr.host}]` : options.addr.host;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${options.addr.port}`, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port,
    close: (graceMs) =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}
