/**
 * A small promise-based @grpc/grpc-js client for any protobuf-es service, for integration tests
 * against the real server over loopback.
 */
import { type DescMethodUnary, type DescService, type MessageInitShape, type MessageShape, create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type ClientOptions, Metadata, type ServiceError, credentials, makeGenericClientConstructor } from "@grpc/grpc-js";

type UnaryMethods<S extends DescService> = {
  [K in keyof S["method"] as S["method"][K] extends DescMethodUnary ? K : never]: S["method"][K] extends DescMethodUnary<infer I, infer O>
    ? (request: MessageInitShape<I>, headers?: Record<string, string>) => Promise<MessageShape<O>>
    : never;
};

/** A promise client for one service, plus close(). */
export type TestClient<S extends DescService> = UnaryMethods<S> & { close(): void };

/**
 * Creates a client for `service` at `address` (host:port); `options.channelOverride` puts several
 * services' clients on one connection.
 */
export function grpcClient<S extends DescService>(service: S, address: string, options?: ClientOptions): TestClient<S> {
  const definition: Record<string, unknown> = {};
  for (const m of service.methods) {
    if (m.methodKind !== "unary") continue;
    definition[m.localName] = {
      path: `/${service.typeName}/${m.name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (x: never) => Buffer.from(toBinary(m.input, x)),
      requestDeserialize: (b: Buffer) => fromBinary(m.input, b),
      responseSerialize: (x: never) => Buffer.from(toBinary(m.output, x)),
      responseDeserialize: (b: Buffer) => fromBinary(m.output, b),
    };
  }
  const Ctor = makeGenericClientConstructor(definition as never, service.typeName);
  const client = new Ctor(address, credentials.createInsecure(), options);
  const out: Record<string, unknown> = { close: () => client.close() };
  for (const m of service.methods) {
    if (m.methodKind !== "unary") continue;
    out[m.localName] = (init: never, headers: Record<string, string> = {}) =>
      new Promise((resolve, reject) => {
        const md = new Metadata();
        for (const [k, v] of Object.entries(headers)) md.set(k, v);
        (client as unknown as Record<string, (...a: unknown[]) => void>)[m.localName](create(m.input, init), md, (err: ServiceError | null, res: unknown) =>
          err ? reject(err) : resolve(res),
        );
      });
  }
  return out as TestClient<S>;
}

/** Expects a promise to fail with a gRPC status code; returns the error. */
export async function grpcError(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as ServiceError;
  }
  throw new Error("expected the call to fail");
}
