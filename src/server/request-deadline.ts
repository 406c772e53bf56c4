/**
 * A deadline for gRPC calls whose request never completes: a client that sends a call's headers
 * and then nothing holds a stream, its memory and a slot of its connection's stream limit for as
 * long as it likes (grpc-js waits forever). A grpc-js server interceptor notes every call; once per
 * timeout a sweep answers DEADLINE_EXCEEDED to each call noted before the previous sweep whose
 * request message has still not fully arrived, and resets its stream (RST_STREAM NO_ERROR, as
 * HTTP/2 lets a server do after a complete response), which frees the slot. So a call is ended
 * between one and two timeouts after it began. Calls whose request arrived are never touched,
 * however long their answer takes (Login waiting for argon2, a health Watch stream).
 */
import { type ServerInterceptingCall, type ServerInterceptingCallInterface, type ServerInterceptor, status } from "@grpc/grpc-js";
import { type ServerHttp2Stream, constants } from "node:http2";

/** Ends a call whose request did not arrive, with DEADLINE_EXCEEDED and these details. */
export type Expire = (details: string) => void;

/** The running deadline. */
export interface RequestDeadline {
  /** The interceptor to give the grpc-js Server (`interceptors` option). */
  readonly interceptor: ServerInterceptor;
  /** Notes a call answered outside grpc-js (fast-lane.ts): `expire` ends it if its request does not arrive. */
  track(stream: ServerHttp2Stream, expire: Expire): void;
  /** Stops the sweeps. */
  close(): void;
}

/**
 * The HTTP/2 stream under a grpc-js call. grpc-js offers no public way to reset a call's stream,
 * so this reads the first interceptor's call (grpc-js's BaseServerInterceptingCall), which holds
 * it as `stream`; test/integration/grpc-limits.test.ts fails if a grpc-js upgrade moves it.
 */
function streamOf(call: ServerInterceptingCallInterface): ServerHttp2Stream | undefined {
  const stream = (call as unknown as { stream?: ServerHttp2Stream }).stream;
  return stream !== undefined && typeof stream.close === "function" ? stream : undefined;
}

/** Creates the deadline; `onTimeout` is called for every call it ends. */
export function createRequestDeadline(options: { readonly timeoutMs: number; readonly onTimeout?: () => void }): RequestDeadline {
  const { timeoutMs } = options;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new Error(`timeoutMs must be a positive integer, got ${timeoutMs}`);
  const details = `the request message did not arrive within ${timeoutMs} ms`;
  // Calls noted since the last sweep, and those noted before it: the latter are at least one timeout old at the next sweep.
  let recent = new Map<ServerHttp2Stream, Expire>();
  let older = new Map<ServerHttp2Stream, Expire>();
  function forget(this: ServerHttp2Stream): void {
    recent.delete(this);
    older.delete(this);
  }
  const sweep = setInterval(() => {
    for (const [stream, expire] of older) {
      if (stream.readableEnded || stream.closed || stream.destroyed) continue;
      options.onTimeout?.();
      expire(details);
      stream.close(constants.NGHTTP2_NO_ERROR);
    }
    older.clear();
    [older, recent] = [recent, older];
  }, timeoutMs);
  sweep.unref();
  const track = (stream: ServerHttp2Stream, expire: Expire) => {
    recent.set(stream, expire);
    stream.on("close", forget);
  };
  return {
    interceptor(_method, call) {
      const stream = streamOf(call);
      if (stream !== undefined) track(stream, (text) => call.sendStatus({ code: status.DEADLINE_EXCEEDED, details: text }));
      // The call itself, unwrapped (no object per call): grpc-js only needs its interface.
      return call as ServerInterceptingCall;
    },
    track,
    close() {
      clearInterval(sweep);
      recent.clear();
      older.clear();
    },
  };
}
