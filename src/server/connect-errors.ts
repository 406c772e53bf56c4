/**
 * What a client of the HTTP port sees when a call fails before any response message, in every
 * protocol connect-node serves there (Connect unary and streaming, gRPC-web, gRPC over HTTP/1.1),
 * and the count of every call refused before Verdict's handler ran.
 *
 * connect-es reads, decompresses and decodes the request before any interceptor or handler runs,
 * and refuses what it cannot read there: malformed JSON (INVALID_ARGUMENT), a body over the size
 * limit, a bad timeout header, an unknown compression, a missing message, a content type or HTTP
 * method the method does not take (415 or 405 with no body), and, with code INTERNAL (HTTP 500
 * over Connect; the gRPC rule is that libraries never raise INVALID_ARGUMENT), a binary message
 * that does not decode, an envelope flagged compressed when the request names no compression, or
 * a body that does not decompress. No router option changes this, so the HTTP server wraps each of
 * connect's handlers with answerClientErrors, and each service implementation with markReached.
 *
 * Whether a call was refused is known from markReached, not from connect-es's error texts: a call
 * whose implementation never started was refused while its request was read. Such a call is
 * counted here (rpc.ts's handler counts the others, as the gRPC port does), and a refusal that
 * connect-es answers as a server fault is INVALID_ARGUMENT with the reason, as on the gRPC port
 * (rpc.ts decodes in the handler there). connect-es's texts only choose the wording of the reason.
 * Any server fault after the implementation started reaches the client as "internal error" only.
 */
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, type ServiceImpl, createContextKey, createContextValues } from "@connectrpc/connect";
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

/** connect-es's wording of a binary message that does not decode, and of a compressed envelope it cannot decompress. */
const PARSE_BINARY = "parse binary: ";
const COMPRESSED_WITHOUT_ENCODING = "received compressed envelope, but do not know how to decompress";

/** Longest part of connect-es's own text (or of a client's header) put in a refusal. */
const MAX_REASON = 200;

/** Set on a call's context values when its implementation starts: the request was read and decoded. */
const IMPLEMENTATION_STARTED = createContextKey(false, { description: "the call's implementation started" });

/**
 * `implementation` with each of its methods marking the call as started (IMPLEMENTATION_STARTED)
 * before it runs, so that answerClientErrors knows a call that never started was refused by connect-es.
 */
export function markReached<S extends DescService>(service: S, implementation: Partial<ServiceImpl<S>>): Partial<ServiceImpl<S>> {
  const marked: Record<string, unknown> = { ...implementation };
  for (const method of service.methods) {
    const impl = (implementation as Record<string, unknown>)[method.localName];
    if (typeof impl !== "function") continue;
    marked[method.localName] = function (this: unknown, request: unknown, context: { values: ContextValues }) {
      context.values.set(IMPLEMENTATION_STARTED, true);
      return (impl as (request: unknown, context: unknown) => unknown).call(this, request, context);
    };
  }
  return marked as Partial<ServiceImpl<S>>;
}

/**
 * The error a client gets instead of `error`, raised for a call whose request is a `inputType`
 * message, or undefined to keep it. For a call `refused` before its implementation started, a
 * server fault is INVALID_ARGUMENT with connect-es's reason (the request could not be read); for
 * one that started, a server fault carries only "internal error" (`onInternal` gets it first).
 */
export function clientFacingError(error: ConnectError, inputType: string, refused: boolean, onInternal: (error: ConnectError) => void): ConnectError | undefined {
  if (!SERVER_FAULTS.has(error.code)) return undefined;
  if (refused) return new ConnectError(unreadableReason(error.rawMessage, inputType), Code.InvalidArgument);
  if (error.rawMessage === INTERNAL_MESSAGE && error.details.length === 0) return undefined;
  onInternal(error);
  return new ConnectError(INTERNAL_MESSAGE, error.code);
}

/** Why a request could not be read, from connect-es's text for it. */
function unreadableReason(raw: string, inputType: string): string {
  if (raw.startsWith(PARSE_BINARY)) return `malformed ${inputType} message: ${raw.slice(PARSE_BINARY.length, PARSE_BINARY.length + MAX_REASON)}`;
  if (raw === COMPRESSED_WITHOUT_ENCODING) return "a message is flagged compressed, but the request names no compression";
  // connect-es's text for a request it could not read; "internal error" is an exception of its own it hides.
  return raw === "" || raw === INTERNAL_MESSAGE ? "the request could not be read" : `the request could not be read: ${raw.slice(0, MAX_REASON)}`;
}

/** The content types a method takes, for the answer to one it does not. */
function contentTypes(handler: UniversalHandler): string {
  const connect = handler.method.methodKind === "unary" ? "application/json or application/proto (Connect)" : "application/connect+json or application/connect+proto (Connect)";
  return `${connect}, application/grpc-web+proto or +json (gRPC-web), application/grpc+proto or +json (gRPC)`;
}

/**
 * The Connect error for a request connect-es refused with a bare HTTP status (no body): a content
 * type or an HTTP method the method does not take. UNIMPLEMENTED, as connect-es answers a
 * compression it does not support; undefined for any other status.
 */
function bareRefusal(status: number, req: UniversalServerRequest, handler: UniversalHandler): ConnectError | undefined {
  if (status === 415) {
    const type = req.header.get("content-type");
    const sent = type === null || type === "" ? "the request has no content-type" : `content-type ${JSON.stringify(type.slice(0, MAX_REASON))} is not supported`;
    return new ConnectError(`${sent}: send ${contentTypes(handler)}`, Code.Unimplemented);
  }
  if (status === 405) return new ConnectError(`HTTP method ${req.method.slice(0, MAX_REASON)} is not allowed: call this method with ${handler.allowedMethods.join(" or ")}`, Code.Unimplemented);
  return undefined;
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
 * (trailers envelope) and gRPC (trailers). A content type or HTTP method the method does not take
 * gets a Connect error body beside its 415 or 405. Every server fault hidden so is logged; every
 * call refused before its implementation started (markReached) is counted by `count`, by the code
 * its client gets.
 */
export function answerClientErrors(handler: UniversalHandler, logger: Logger, count?: MethodCounter): UniversalHandler {
  const inputType = handler.method.input.typeName;
  const method = handler.method.name;
  const log = (error: ConnectError) => logger.error("rpc failed", { method, code: codeToString(error.code), error: error.rawMessage });

  async function answer(req: UniversalServerRequest): Promise<UniversalServerResponse> {
    const values = req.contextValues ?? createContextValues();
    const res = await handler(req.contextValues === undefined ? { ...req, contextValues: values } : req);
    const refused = () => !values.get(IMPLEMENTATION_STARTED);
    const facing = (error: ConnectError) => {
      const before = refused();
      const replaced = clientFacingError(error, inputType, before, log);
      if (before) count?.(codeToString((replaced ?? error).code));
      return replaced;
    };
    const type = res.header?.get("content-type") ?? "";
    const body = res.body;
    if (body === undefined) {
      const error = res.status !== 200 && refused() ? bareRefusal(res.status, req, handler) : undefined;
      if (error === undefined) return res;
      count?.(codeToString(error.code));
      const json = errorToJsonBytes(error, undefined);
      const header = new Headers(res.header);
      header.set("content-type", "application/json");
      header.set("content-length", String(json.byteLength));
      if (res.status === 405) header.set("allow", handler.allowedMethods.join(", "));
      return { ...res, header, body: once(json) };
    }
    if (res.status !== 200 && type.startsWith("application/json") && (res.status === 500 || refused())) {
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
