/**
 * A Connect `Transport` over @grpc/grpc-js: generated clients (createClient) call Verdict's gRPC
 * port through the same typed interface as over Connect. Unary calls only (every Verdict method is
 * unary); gRPC status codes become ConnectError codes (the numbers are the same).
 */
import { type DescMessage, type DescMethodStreaming, type DescMethodUnary, type MessageShape, create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type Transport, decodeBinaryHeader, encodeBinaryHeader } from "@connectrpc/connect";
import type { UnaryResponse } from "@connectrpc/connect";
import { type ChannelCredentials, Client, Metadata, type ServiceError, status } from "@grpc/grpc-js";

/** A transport that can also close its channel. */
export interface GrpcTransport extends Transport {
  close(): void;
}

/**
 * grpc-js metadata as connect-es's transports give it: every value of a key (joined with ", "), a
 * binary (`-bin`) value in base64 (read it with decodeBinaryHeader).
 */
function toHeaders(metadata: Metadata | undefined): Headers {
  const headers = new Headers();
  if (!metadata) return headers;
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    for (const value of values) headers.append(key, typeof value === "string" ? value : encodeBinaryHeader(value));
  }
  return headers;
}

/**
 * The metadata of a call: the transport's headers, replaced by the call's own of the same name. A
 * binary (`-bin`) header is base64, as connect-es's transports take it (encodeBinaryHeader); grpc-js
 * sends it as bytes. A header gRPC metadata cannot carry (a text value not printable ASCII) is
 * INVALID_ARGUMENT, named by its key only (the value may be a credential).
 */
function toMetadata(header: Parameters<Transport["unary"]>[3], base: Readonly<Record<string, string>>): Metadata {
  const metadata = new Metadata();
  const put = (key: string, value: string) => {
    metadata.remove(key);
    try {
      if (!key.toLowerCase().endsWith("-bin")) metadata.add(key, value);
      else for (const part of value.split(",")) metadata.add(key, Buffer.from(decodeBinaryHeader(part.trim())));
    } catch {
      throw new ConnectError(`header ${JSON.stringify(key)} cannot be sent as gRPC metadata: a name of 0-9 a-z _ . -, a value of printable ASCII (base64 for -bin)`, Code.InvalidArgument);
    }
  };
  for (const [key, value] of Object.entries(base)) put(key, value);
  new Headers(header).forEach((value, key) => put(key, value));
  return metadata;
}

/**
 * Creates a transport to `address` (host:port) with `credentials` (insecure or TLS); `headers` go
 * with every call (the caller's credential).
 */
export function createGrpcTransport(address: string, credentials: ChannelCredentials, headers: Readonly<Record<string, string>>): GrpcTransport {
  const client = new Client(address, credentials);
  return {
    unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: Parameters<Transport["unary"]>[3],
      input: Parameters<Transport["unary"]>[4],
    ): Promise<UnaryResponse<I, O>> {
      const path = `/${method.parent.typeName}/${method.name}`;
      const request = create(method.input, input as never);
      const callOptions = timeoutMs !== undefined && timeoutMs > 0 ? { deadline: Date.now() + timeoutMs } : {};
      return new Promise((resolve, reject) => {
        let responseHeader = new Headers();
        const call = client.makeUnaryRequest(
          path,
          (m: MessageShape<I>) => Buffer.from(toBinary(method.input, m)),
          (b: Buffer) => fromBinary(method.output, b),
          request,
          toMetadata(header, headers),
          callOptions,
          (error: ServiceError | null, message?: MessageShape<O>) => {
            signal?.removeEventListener("abort", abort);
            if (error) {
              const code = error.code === status.OK ? Code.Unknown : (error.code as number as Code);
              reject(new ConnectError(error.details || error.message, code, toHeaders(error.metadata)));
              return;
            }
            resolve({ stream: false, service: method.parent, method, header: responseHeader, trailer: new Headers(), message: message! });
          },
        );
        call.on("metadata", (m: Metadata) => {
          responseHeader = toHeaders(m);
        });
        const abort = () => call.cancel();
        signal?.addEventListener("abort", abort, { once: true });
      });
    },
    stream<I extends DescMessage, O extends DescMessage>(method: DescMethodStreaming<I, O>): never {
      throw new ConnectError(`${method.parent.typeName}/${method.name} is a streaming method; this transport calls unary methods only`, Code.Unimplemented);
    },
    close: () => client.close(),
  };
}
