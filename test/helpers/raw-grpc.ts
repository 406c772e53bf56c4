/**
 * A gRPC client that sends raw bytes as the request message (no serialisation), for tests that
 * feed a real server malformed or mutated messages.
 */
import { Client, Metadata, type ServiceError, type StatusObject, credentials } from "@grpc/grpc-js";

const identity = (b: Buffer) => b;

/** The outcome of one raw call: the status code and details, and the response bytes when OK. */
export interface RawOutcome {
  readonly code: number;
  readonly details: string;
  readonly response?: Buffer;
}

/** A client for raw unary and server-streaming calls to any method path. */
export interface RawGrpcClient {
  unary(path: string, request: Buffer, headers?: Record<string, string>): Promise<RawOutcome>;
  /** Starts a server-streaming call and resolves with its first message or its final status. */
  serverStreamFirst(path: string, request: Buffer): Promise<RawOutcome>;
  close(): void;
}

/** Creates a raw client for `address` (host:port). */
export function rawGrpcClient(address: string): RawGrpcClient {
  const client = new Client(address, credentials.createInsecure());
  return {
    unary: (path, request, headers = {}) =>
      new Promise((resolve) => {
        const md = new Metadata();
        for (const [k, v] of Object.entries(headers)) md.set(k, v);
        client.makeUnaryRequest(path, identity, identity, request, md, (err: ServiceError | null, res?: Buffer) =>
          resolve(err ? { code: err.code, details: err.details } : { code: 0, details: "", response: res }),
        );
      }),
    serverStreamFirst: (path, request) =>
      new Promise((resolve) => {
        const call = client.makeServerStreamRequest(path, identity, identity, request, new Metadata());
        call.once("data", (res: Buffer) => {
          resolve({ code: 0, details: "", response: res });
          call.cancel();
        });
        call.on("error", () => undefined);
        call.once("status", (s: StatusObject) => resolve({ code: s.code, details: s.details }));
      }),
    close: () => client.close(),
  };
}
