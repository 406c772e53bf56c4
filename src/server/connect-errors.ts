/**
 * What a client of the HTTP port sees when a call fails before any response message, in every
 * protocol connect-node serves there (Connect unary and streaming, gRPC-web, gRPC over HTTP/1.1).
 *
 * connect-es raises a request message that does not decode as protobuf binary with code internal
 * ("parse binary: ...", HTTP 500 over Connect), as it does an envelope flagged compressed when the
 * request names no compression: the gRPC rule is that libraries never raise INVALID_ARGUMENT. It
 * decodes before any interceptor runs and no router option changes the code, so the HTTP server
 * wraps each of connect's handlers with answerClientErrors, which rewrites such an answer in the
 * protocol's own form: bad input is INVALID_ARGUMENT with its reason, as on the gRPC port (rpc.ts
 * decodes in the handler there), and an internal error's message never reaches the client. Such a
 * call never reaches rpc.ts's handler, so it is counted here (as the gRPC port counts it there).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { type UniversalHandler, type UniversalServerRequest, type UniversalServerResponse, encodeEnvelope } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, codeToString, endStreamFlag, endStreamFromJson, endStreamToJson, errorFromJsonBytes, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { findTrailerError, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import type { MethodCounter } from "../api/rpc.js";
import type { Logger } from "../observability/logger.js";

/** The message every internal error reaches a client with (rpc.ts's own internal errors carry it already). */
const INTERNAL_MESSAGE = "internal error";

/** Codes answered HTTP 500 over Connect: what the server failed at, never the client. */
const SERVER_FAULTS: ReadonlySet<Code> = new Set([Code.Internal, Code.Unknown, Code.DataLoss]);

const PARSE_BINARY = "parse binary: ";
const COMPRESSED_WITHOUT_ENCODING = "received compressed envelope, but do not know how to decompress";

/**
 * The error a client gets instead of `error`, raised for a call whose request is a `inputType`
 * message, or undefined to keep it: a request that does not decode is INVALID_ARGUMENT with the
 * decoder's reason; any other server fault carries only "internal error" (`onInternal` gets it first).
 */
export function clientFacingError(error: ConnectError, inputType: string, onInternal: (error: ConnectError) => void): ConnectError | undefined {
  if (!SERVER_FAULTS.has(error.code)) return undefined;
  if (error.code === Code.Internal && error.rawMessage.startsWith(PARSE_BINARY)) {
    return new ConnectError(`malformed ${inputType} message: ${error.rawMessage.slice(PARSE_BINARY.length)}`, Code.InvalidArgument);
  }
  if (error.code === Code.Internal && error.rawMessage === COMPRESSED_WITHOUT_ENCODING) {
    return new ConnectError("a message is flagged compressed, but the request names no compression", Code.InvalidArgument);
  }
  if (error.rawMessage === INTERNAL_MESSAGE && error.details.length === 0) return undefined;
  onInternal(error);
  return new ConnectError(INTERNAL_MESSAGE, error.code);
}

async function allBytes(chunks: AsyncIterable<Uint8Array>, first?: Uint8Array): Promise<Uint8Array> {
  const parts = first === undefined ? [] : [first];
  for await (const chunk of chunks) parts.push(chunk);
  return Buffer.concat(parts);
}

async function* resumed(first: Uint8Array, rest: AsyncIterator<Uint8Array>): AsyncIterable<Uint8Array> {
  yield first;
  yield* { [Symbol.asyncIterator]: () => rest };
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

async function* none(): AsyncIterable<Uint8Array> {}

/**
 * A body whose first envelope carries `endFlag` (gRPC-web's trailers, Connect streaming's end of
 * stream) answers an error before any message: `rewrite` gets that envelope's data and returns
 * the data to send instead (or undefined to keep it). Any other body passes through untouched.
 */
async function rewriteEndEnvelope(
  body: AsyncIterable<Uint8Array>,
  endFlag: number,
  rewrite: (data: Uint8Array) => Uint8Array | undefined,
): Promise<AsyncIterable<Uint8Array>> {
  const it = body[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done) return none();
  if (first.value.length === 0 || (first.value[0] & endFlag) !== endFlag) return resumed(first.value, it);
  const bytes = await allBytes({ [Symbol.asyncIterator]: () => it }, first.value);
  const length = bytes.length >= 5 ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).readUInt32BE(1) : -1;
  if (length !== bytes.length - 5) return once(bytes);
  const replaced = rewrite(bytes.subarray(5));
  return once(replaced === undefined ? bytes : encodeEnvelope(bytes[0], replaced));
}

/**
 * Wraps one of connect's handlers (one method, every protocol) so that an error it answers before
 * any response message reaches the client as clientFacingError says, in the protocol's form:
 * Connect unary (HTTP status and JSON body), Connect streaming (end-of-stream envelope), gRPC-web
 * (trailers envelope) and gRPC (trailers). Every server fault hidden so is logged; every request
 * refused so as INVALID_ARGUMENT (it did not decode, so no handler counted it) is counted by `count`.
 */
export function answerClientErrors(handler: UniversalHandler, logger: Logger, count?: MethodCounter): UniversalHandler {
  const inputType = handler.method.input.typeName;
  const method = handler.method.name;
  const log = (error: ConnectError) => logger.error("rpc failed", { method, code: codeToString(error.code), error: error.rawMessage });
  const facing = (error: ConnectError) => {
    const replaced = clientFacingError(error, inputType, log);
    if (replaced?.code === Code.InvalidArgument) count?.(codeToString(replaced.code));
    return replaced;
  };

  async function answer(req: UniversalServerRequest): Promise<UniversalServerResponse> {
    const res = await handler(req);
    const type = res.header?.get("content-type") ?? "";
    const body = res.body;
    if (body === undefined) return res;
    if (res.status === 500 && type.startsWith("application/json")) {
      const bytes = await allBytes(body);
      const replaced = facing(errorFromJsonBytes(bytes, undefined, new ConnectError(INTERNAL_MESSAGE, Code.Internal)));
      if (replaced === undefined) return { ...res, body: once(bytes) };
      const json = errorToJsonBytes(replaced, undefined);
      const header = new Headers(res.header);
      header.set("content-length", String(json.byteLength));
      return { ...res, status: codeToHttpStatus(replaced.code), header, body: once(json) };
    }
    if (type.startsWith("application/grpc-web")) {
      return {
        ...res,
        body: await rewriteEndEnvelope(body, trailerFlag, (data) => {
          const trailer = trailerParse(data);
          const error = findTrailerError(trailer);
          const replaced = error && facing(error);
          return replaced && trailerSerialize(withStatus(trailer, replaced));
        }),
      };
    }
    if (type.startsWith("application/connect+")) {
      return {
        ...res,
        body: await rewriteEndEnvelope(body, endStreamFlag, (data) => {
          const end = endStreamFromJson(data);
          const replaced = end.error && facing(end.error);
          return replaced && new TextEncoder().encode(JSON.stringify(endStreamToJson(end.metadata, replaced, undefined)));
        }),
      };
    }
    if (type.startsWith("application/grpc") && res.trailer !== undefined) {
      // Before any message the trailers are final: the call ended before the handler returned.
      const error = findTrailerError(res.trailer);
      const replaced = error && facing(error);
      if (replaced !== undefined) withStatus(res.trailer, replaced);
    }
    return res;
  }

  return Object.assign(answer, {
    protocolNames: handler.protocolNames,
    service: handler.service,
    method: handler.method,
    requestPath: handler.requestPath,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
  });
}

/** `trailer` with its gRPC status replaced by `error`'s (and no details of the old one). */
function withStatus(trailer: Headers, error: ConnectError): Headers {
  trailer.delete("grpc-status-details-bin");
  return setTrailerStatus(trailer, error);
}
