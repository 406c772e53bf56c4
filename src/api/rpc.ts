/**
 * Service implementations are written once, as plain handlers over protobuf-es messages, and
 * mounted on both servers: @grpc/grpc-js (binary gRPC, the hot path) and connect-node (Connect
 * JSON and gRPC-web over HTTP for curl and browsers).
 */
import type { DescMethodUnary, DescService, MessageShape } from "@bufbuild/protobuf";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { type HandlerContext, type ServiceImpl, createContextKey } from "@connectrpc/connect";
import type { ServerUnaryCall, ServiceDefinition, UntypedServiceImplementation, sendUnaryData } from "@grpc/grpc-js";
import type { Logger } from "../observability/logger.js";
import { malformedRequest, toApiError, toConnectError, toGrpcError } from "./errors.js";
import { readCookie } from "./session-cookie.js";

/** What a handler may know about its call. */
export interface CallContext {
  /** The first value of a request header (lower-case name), or undefined. */
  header(name: string): string | undefined;
  /** The address of the caller's socket, without the port ("" when unknown). See client-address.ts for the client's. */
  readonly peer: string;
  /** The session cookie's value ("" when absent); only calls over HTTP carry cookies. */
  sessionCookie?(): string;
}

type Unary<S extends DescService, K extends keyof S["method"]> = S["method"][K] extends DescMethodUnary<infer I, infer O>
  ? (request: MessageShape<I>, ctx: CallContext) => MessageShape<O> | Promise<MessageShape<O>>
  : never;

/** Handlers for every unary method of a service. */
export type Handlers<S extends DescService> = {
  [K in keyof S["method"] as S["method"][K] extends DescMethodUnary ? K : never]: Unary<S, K>;
};

function logFailure(logger: Logger, method: string, error: unknown, code: string): void {
  if (code === "internal" || code === "unavailable") logger.error("rpc failed", { method, code, error: (error as Error)?.cause ?? error });
}

/** The context of a grpc-js call: one small object per call, headers read only when asked. */
class GrpcCallContext implements CallContext {
  constructor(private readonly call: ServerUnaryCall<unknown, unknown>) {}
  header(name: string): string | undefined {
    const v = this.call.metadata.get(name);
    return v.length > 0 ? String(v[0]) : undefined;
  }
  get peer(): string {
    // grpc-js gives "address:port" (IPv6 unbracketed), or "unknown" without a socket.
    const peer = this.call.getPeer();
    return /:\d+$/.test(peer) ? peer.slice(0, peer.lastIndexOf(":")) : peer === "unknown" ? "" : peer;
  }
}

/** Which server answered a call: @grpc/grpc-js (binary gRPC) or connect-node (Connect, gRPC-web, gRPC over HTTP). */
export type Transport = "grpc" | "connect";

/** Counts the calls of one method on one transport by result code ("ok" or the error's code). */
export type MethodCounter = (code: string) => void;

/** Makes the counter of one method on one transport, once when the service is built; undefined: not counted. */
export type CountRequests = (method: string, transport: Transport) => MethodCounter | undefined;

/** What a service is mounted with besides its handlers. */
export interface MountOptions {
  /** Hand-written codecs replacing protobuf-es for some methods (gRPC only), by local name. */
  readonly codecs?: Readonly<Record<string, WireCodec>>;
  /** Counts every call by method and result code. */
  readonly count?: CountRequests;
  /** The session cookie read as the caller's credential (Connect over HTTP only). */
  readonly sessionCookie?: string;
}

const uncounted: MethodCounter = () => undefined;

/** Where the HTTP server puts the address of a Connect call's socket (the Connect context has none). */
export const SOCKET_ADDRESS = createContextKey("", { description: "the remote address of the request's socket" });

/** A hand-written codec replacing protobuf-es (de)serialisation for one hot method. */
export interface WireCodec {
  deserialize(bytes: Buffer): unknown;
  serialize(message: unknown): Buffer;
}

/** A service ready to mount on the gRPC server. */
export interface GrpcService {
  readonly definition: ServiceDefinition;
  readonly implementation: UntypedServiceImplementation;
}

/**
 * Builds a grpc-js service definition and implementation from handlers (and optional codecs).
 * Requests are decoded in the handler, not by grpc-js, so that a message that does not decode is
 * answered INVALID_ARGUMENT (grpc-js would answer INTERNAL "Error deserializing request").
 */
export function toGrpcService<S extends DescService>(
  service: S,
  handlers: Handlers<S>,
  logger: Logger,
  options: MountOptions = {},
): GrpcService {
  const codecs = options.codecs ?? {};
  const definition: Record<string, ServiceDefinition[string]> = {};
  const implementation: UntypedServiceImplementation = {};
  for (const method of service.methods) {
    if (method.methodKind !== "unary") continue;
    const handler = (handlers as Record<string, (req: unknown, ctx: CallContext) => unknown>)[method.localName].bind(handlers);
    const { input, output } = method;
    const decode = codecs[method.localName]?.deserialize ?? ((b: Buffer) => fromBinary(input, b));
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (m: MessageShape<typeof input>) => Buffer.from(toBinary(input, m)),
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: codecs[method.localName]?.serialize ?? ((m: MessageShape<typeof output>) => Buffer.from(toBinary(output, m))),
      responseDeserialize: (b: Buffer) => fromBinary(output, b),
    };
    const count = options.count?.(method.name, "grpc") ?? uncounted;
    const fail = (callback: sendUnaryData<unknown>, error: unknown) => {
      const api = toApiError(error);
      logFailure(logger, method.name, error, api.code);
      count(api.code);
      callback(toGrpcError(api));
    };
    const succeed = (callback: sendUnaryData<unknown>, response: unknown) => {
      count("ok");
      callback(null, response);
    };
    implementation[method.localName] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      let request: unknown;
      try {
        request = decode(call.request as Buffer);
      } catch (error) {
        fail(callback, malformedRequest(input.typeName, error));
        return;
      }
      try {
        const result = handler(request, new GrpcCallContext(call));
        if (result instanceof Promise) result.then((r) => succeed(callback, r), (e) => fail(callback, e));
        else succeed(callback, result);
      } catch (error) {
        fail(callback, error);
      }
    };
  }
  return { definition: definition as ServiceDefinition, implementation };
}

/** Adapts handlers to a connect-node service implementation. */
export function toConnectService<S extends DescService>(service: S, handlers: Handlers<S>, logger: Logger, options: MountOptions = {}): ServiceImpl<S> {
  const impl: Record<string, unknown> = {};
  for (const method of service.methods) {
    if (method.methodKind !== "unary") continue;
    const handler = (handlers as Record<string, (req: unknown, ctx: CallContext) => unknown>)[method.localName].bind(handlers);
    const count = options.count?.(method.name, "connect") ?? uncounted;
    impl[method.localName] = async (request: unknown, hc: HandlerContext) => {
      const ctx: CallContext = {
        header: (name) => hc.requestHeader.get(name) ?? undefined,
        peer: hc.values.get(SOCKET_ADDRESS),
        sessionCookie: () => (options.sessionCookie === undefined ? "" : readCookie(hc.requestHeader.get("cookie") ?? undefined, options.sessionCookie)),
      };
      try {
        const response = await handler(request, ctx);
        count("ok");
        return response;
      } catch (error) {
        const api = toApiError(error);
        logFailure(logger, method.name, error, api.code);
        count(api.code);
        throw toConnectError(api);
      }
    };
  }
  return impl as ServiceImpl<S>;
}
