/**
 * The fast lane: the hot unary methods (Check, ext_authz Check, Health/Check) answered straight
 * from the HTTP/2 stream, without grpc-js's per-call machinery.
 *
 * Why hand-written (STYLE: "prefer a library, except on the measured hot path"): against a bare
 * grpc-js server answering an empty message, a grpc-js call costs about 33 us of the event loop on
 * this kind of machine, a bare node:http2 gRPC answer about 22 us (bench/RESULTS.md, issue 13).
 * grpc-js builds per call a Metadata object from the headers, an interceptor chain, a stream
 * decoder, a read queue driven through promises and several closures; a unary call with an
 * uncompressed message needs none of it. Everything else stays with grpc-js on the same
 * connections: sessions, HTTP/2 settings and keepalive, other methods, compressed requests
 * (`grpc-encoding` other than identity) and bad content types are handed back to it untouched.
 *
 * What a fast-lane call still does as grpc-js would: the message size limit (RESOURCE_EXHAUSTED),
 * one request message per unary call, `grpc-timeout` for answers that wait (DEADLINE_EXCEEDED),
 * the request deadline for a request that never arrives (request-deadline.ts), the request
 * metadata a handler reads (`-bin` values as bytes, the entries grpc-js drops absent), response
 * metadata (`sendMetadata`) and error metadata, grpc-message percent-encoded, and the same handler
 * functions as grpc-js calls (rpc.ts builds them once).
 */
import type { Metadata, MetadataValue, ServiceError, UntypedHandleCall } from "@grpc/grpc-js";
import { type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import type { RequestDeadline } from "./request-deadline.js";

/** gRPC status codes the lane answers itself (the numbers of the gRPC spec). */
const UNIMPLEMENTED = 12;
const INTERNAL = 13;
const RESOURCE_EXHAUSTED = 8;
const DEADLINE_EXCEEDED = 4;

const RESPONSE_HEADERS: OutgoingHttpHeaders = Object.freeze({
  ":status": 200,
  "content-type": "application/grpc+proto",
  "grpc-accept-encoding": "identity,deflate,gzip",
});
const OK_TRAILERS: OutgoingHttpHeaders = Object.freeze({ "grpc-status": "0", "grpc-message": "OK" });
const NO_VALUES: readonly string[] = Object.freeze([]);

/** One unary method on the lane: grpc-js's handler function and the response serializer. */
export interface FastMethod {
  readonly path: string;
  readonly handler: UntypedHandleCall;
  readonly serialize: (response: unknown) => Buffer;
}

/** Settings of the lane. */
export interface FastLaneOptions {
  readonly methods: readonly FastMethod[];
  /** Largest request message, in bytes (the server's `grpc.max_receive_message_length`). */
  readonly maxRequestBytes: number;
  /** Ends calls whose request does not arrive in time. */
  readonly deadline: RequestDeadline;
  /** Told of an error that escaped a handler or the serializer (a bug: the client gets "internal error"). */
  readonly onError: (error: unknown, path: string) => void;
}

/** The lane: `take` answers a stream when it is one of its methods and returns true. */
export interface FastLane {
  take(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): boolean;
}

/** The longest delay a Node timer holds (2^31 - 1 ms); a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A `grpc-timeout` header value in milliseconds (at most MAX_TIMER_MS: a longer one, up to the
 * spec's 99999999 hours, is as good as none), or undefined when absent or not valid.
 */
export function parseGrpcTimeout(value: unknown): number | undefined {
  if (typeof value !== "string") return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!m) return undefined;
  return Math.min(timeoutMs(Number(m[1]), m[2]), MAX_TIMER_MS);
}

function timeoutMs(n: number, unit: string): number {
  switch (unit) {
    case "H":
      return n * 3_600_000;
    case "M":
      return n * 60_000;
    case "S":
      return n * 1000;
    case "m":
      return n;
    case "u":
      return n / 1000;
    default:
      return n / 1e6;
  }
}

function ignore(): void {}

function sendOkTrailers(this: ServerHttp2Stream): void {
  this.sendTrailers(OK_TRAILERS);
}

/**
 * Headers grpc-js takes out of the metadata a handler gets (server-interceptors.ts), and what its
 * Metadata accepts as a key and as a text value (metadata.ts): an entry with another is dropped.
 */
const NOT_METADATA: ReadonlySet<string> = new Set(["grpc-timeout", "grpc-encoding", "grpc-accept-encoding", "accept-encoding", "te", "content-type"]);
const LEGAL_KEY = /^[:0-9a-z_.-]+$/;
const LEGAL_TEXT = /^[ -~]*$/;

/** Whether grpc-js keeps the header `name` (lower-case) in a handler's metadata. */
function isMetadataKey(name: string): boolean {
  return name.charCodeAt(0) !== 58 /* ":" */ && !NOT_METADATA.has(name) && LEGAL_KEY.test(name);
}

/** isMetadataKey of the names handlers ask for (a few constants in the code): one lookup a read. */
const METADATA_KEYS = new Map<string, boolean>();
const MAX_REMEMBERED_KEYS = 64;

function isRememberedMetadataKey(name: string): boolean {
  let legal = METADATA_KEYS.get(name);
  if (legal === undefined) {
    legal = isMetadataKey(name);
    if (METADATA_KEYS.size < MAX_REMEMBERED_KEYS) METADATA_KEYS.set(name, legal);
  }
  return legal;
}

/**
 * A `-bin` header's values as grpc-js's Metadata.fromHttp2Headers decodes them: base64 to bytes,
 * a custom key's value (not `grpc-`) split at commas first, since node:http2 joins repeated fields
 * with ", ".
 */
function binaryValues(name: string, value: string | string[]): readonly Buffer[] {
  if (Array.isArray(value)) return value.map((v) => Buffer.from(v, "base64"));
  if (name.startsWith("grpc-")) return [Buffer.from(value, "base64")];
  return value.split(",").map((v) => Buffer.from(v.trim(), "base64"));
}

/** A text header's values as grpc-js keeps them: up to the first that is not printable ASCII. */
function textValues(value: string | string[]): readonly string[] {
  if (!Array.isArray(value)) return LEGAL_TEXT.test(value) ? [value] : NO_VALUES;
  const bad = value.findIndex((v) => !LEGAL_TEXT.test(v));
  return bad < 0 ? value : value.slice(0, bad);
}

/**
 * The request metadata as grpc-js's `Metadata.get` answers it (the one method handlers call), read
 * from the HTTP/2 headers when asked: no Metadata is built per call, and a call whose handler reads
 * no header costs nothing here. A name is matched lower-case; pseudo-headers and the transport
 * headers grpc-js removes are absent, as are entries its Metadata refuses (a key outside
 * [0-9a-z_.-], a text value that is not printable ASCII); `-bin` values are bytes.
 */
class HeaderMetadata {
  constructor(private readonly headers: IncomingHttpHeaders) {}
  get(name: string): readonly MetadataValue[] {
    const value = this.headers[name];
    if (value === undefined) {
      const lower = name.toLowerCase();
      return lower === name ? NO_VALUES : this.get(lower);
    }
    if (!isRememberedMetadataKey(name)) return NO_VALUES;
    return name.endsWith("-bin") ? binaryValues(name, value) : textValues(value);
  }
}

/**
 * One call on the lane. It is also the `call` its handler gets: the part of grpc-js's
 * ServerUnaryCall that Verdict's handlers use (request, metadata, getPeer, sendMetadata).
 */
class FastCall {
  request: Buffer | undefined;
  private chunks: Buffer[] | undefined;
  private first: Buffer | undefined;
  private size = 0;
  private done = false;
  private responseHeaders: OutgoingHttpHeaders = RESPONSE_HEADERS;
  private timer: NodeJS.Timeout | undefined;
  private metadataCache: HeaderMetadata | undefined;

  constructor(
    private readonly stream: ServerHttp2Stream,
    private readonly headers: IncomingHttpHeaders,
    private readonly method: FastMethod,
    private readonly maxRequestBytes: number,
    private readonly onError: (error: unknown, path: string) => void,
  ) {}

  get metadata(): HeaderMetadata {
    return (this.metadataCache ??= new HeaderMetadata(this.headers));
  }

  getPeer(): string {
    const socket = this.stream.session?.socket;
    if (!socket?.remoteAddress) return "unknown";
    return socket.remotePort ? `${socket.remoteAddress}:${socket.remotePort}` : socket.remoteAddress;
  }

  sendMetadata(metadata: Metadata): void {
    if (this.done) return;
    this.responseHeaders = { ...RESPONSE_HEADERS, ...metadata.toHttp2Headers() };
  }

  /** Part of the request body arrived. */
  data(chunk: Buffer): void {
    if (this.done) return;
    this.size += chunk.length;
    if (this.first === undefined) this.first = chunk;
    else (this.chunks ??= [this.first]).push(chunk);
    // The length prefix says how big the message is: refuse it as soon as it is known to be too big,
    // and never hold more than one largest message (more is a second message, refused at the end).
    const declared = this.first.length >= 5 ? this.first.readUInt32BE(1) : this.size - 5;
    if (declared > this.maxRequestBytes || this.size > 5 + this.maxRequestBytes + 5) {
      this.fail(RESOURCE_EXHAUSTED, `Received message larger than max (${Math.max(declared, this.size - 5)} vs. ${this.maxRequestBytes})`);
      this.chunks = undefined;
      this.first = undefined;
    }
  }

  /** The whole request body arrived: decode the one message and run the handler. */
  end(): void {
    if (this.done) return;
    const body = this.chunks === undefined ? this.first : Buffer.concat(this.chunks, this.size);
    this.chunks = undefined;
    this.first = undefined;
    if (body === undefined || body.length === 0) {
      this.fail(UNIMPLEMENTED, `Received no request message for unary method ${this.method.path}`);
      return;
    }
    if (body.length < 5 || body.length < 5 + body.readUInt32BE(1)) {
      this.fail(INTERNAL, "the request message is shorter than its length prefix");
      return;
    }
    const length = body.readUInt32BE(1);
    if (body.length > 5 + length) {
      this.fail(UNIMPLEMENTED, `Received a second request message for unary method ${this.method.path}`);
      return;
    }
    if ((body[0] & 1) === 1) {
      // Compressed messages go to grpc-js (it decompresses); one that says so without an encoding is broken.
      this.fail(INTERNAL, "compressed message without a grpc-encoding");
      return;
    }
    this.request = body.subarray(5);
    try {
      this.method.handler(this as never, this.callback as never);
    } catch (error) {
      // The handlers answer their own errors (rpc.ts); what escapes is a bug: logged, not sent.
      this.onError(error, this.method.path);
      this.fail(INTERNAL, "internal error");
      return;
    }
    if (!this.done) {
      // The answer waits (min_version, a key set fetch): the client's grpc-timeout still holds.
      const ms = parseGrpcTimeout(this.headers["grpc-timeout"]);
      if (ms !== undefined) {
        this.timer = setTimeout(() => this.fail(DEADLINE_EXCEEDED, "Deadline exceeded"), ms);
        this.timer.unref();
      }
    }
  }

  /** grpc-js's `sendUnaryData`. */
  readonly callback = (error: Partial<ServiceError> | null, value?: unknown): void => {
    if (error) {
      this.fail(error.code ?? INTERNAL, error.details ?? error.message ?? "", error.metadata);
      return;
    }
    if (this.done) return;
    let bytes: Buffer;
    try {
      bytes = this.method.serialize(value);
    } catch (error) {
      this.onError(error, this.method.path);
      this.fail(INTERNAL, "internal error: the response could not be serialized");
      return;
    }
    this.finish();
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return;
    const frame = Buffer.allocUnsafe(5 + bytes.length);
    frame[0] = 0;
    frame.writeUInt32BE(bytes.length, 1);
    bytes.copy(frame, 5);
    stream.respond(this.responseHeaders, { waitForTrailers: true });
    stream.on("wantTrailers", sendOkTrailers);
    stream.end(frame);
  };

  /** Ends the call with a status and no message (a trailers-only response). */
  fail(code: number, details: string, metadata?: Metadata): void {
    if (this.done) return;
    this.finish();
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return;
    const trailers: OutgoingHttpHeaders = {
      ...RESPONSE_HEADERS,
      ...metadata?.toHttp2Headers(),
      "grpc-status": String(code),
      "grpc-message": encodeURI(details),
    };
    if (stream.headersSent) {
      stream.close();
      return;
    }
    stream.respond(trailers, { endStream: true });
  }

  private finish(): void {
    this.done = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
  }
}

/** Creates the lane for `methods`. */
export function createFastLane(options: FastLaneOptions): FastLane {
  const methods = new Map(options.methods.map((m) => [m.path, m]));
  const { maxRequestBytes, deadline, onError } = options;
  return {
    take(stream, headers) {
      const method = methods.get(headers[":path"] as string);
      if (method === undefined) return false;
      const contentType = headers["content-type"];
      // grpc-js answers what the lane does not take: a wrong content type (415), a compressed request.
      if (typeof contentType !== "string" || !contentType.startsWith("application/grpc")) return false;
      const encoding = headers["grpc-encoding"];
      if (encoding !== undefined && encoding !== "identity") return false;
      // Each of these events comes once per stream: `on` spares the wrapper `once` builds per call.
      stream.on("error", ignore);
      const call = new FastCall(stream, headers, method, maxRequestBytes, onError);
      deadline.track(stream, (details) => call.fail(DEADLINE_EXCEEDED, details));
      stream.on("data", (chunk: Buffer) => call.data(chunk));
      stream.on("end", () => call.end());
      return true;
    },
  };
}
