/**
 * Hand-written wire codec for the hot path's two messages, CheckRequest and CheckResponse.
 * protobuf-es's reflective codec costs about 3 µs to decode the request and 20 µs to encode the
 * response on these machines, a quarter of a no-op gRPC call; this codec produces the same bytes
 * (tests compare it with protobuf-es on random messages) in a fraction of that.
 */
import { toBinary } from "@bufbuild/protobuf";
import { type CheckRequest, type CheckResponse } from "../../gen/verdict/v1/decision_pb.js";
import { type Principal, PrincipalSchema, type RateLimitStatus } from "../../gen/verdict/v1/types_pb.js";
import { type Cursor, WireError, readString, readVarint, skipField, varintSize, writeVarint } from "./protowire.js";

const principalBytes = new WeakMap<Principal, Uint8Array>();

/** Decodes a CheckRequest; unknown fields are skipped, a repeated field's last value wins. */
export function decodeCheckRequest(buf: Buffer): CheckRequest {
  let credential = "";
  let action = "";
  let tenant = "";
  let minVersion = 0;
  let cost: number | undefined;
  const c: Cursor = { buf, pos: 0 };
  while (c.pos < buf.length) {
    const tag = readVarint(c, buf.length);
    const field = Math.floor(tag / 8);
    const wireType = tag & 7;
    if (field === 0) throw new WireError("field number 0");
    if (field >= 1 && field <= 3) {
      if (wireType !== 2) throw new WireError(`field ${field} has wire type ${wireType}`);
      const s = readString(c, buf.length);
      if (field === 1) credential = s;
      else if (field === 2) action = s;
      else tenant = s;
    } else if (field === 4) {
      if (wireType !== 0) throw new WireError(`field 4 has wire type ${wireType}`);
      minVersion = readVarint(c, buf.length);
    } else if (field === 5) {
      if (wireType !== 0) throw new WireError(`field 5 has wire type ${wireType}`);
      // uint32: protobuf keeps the low 32 bits of a longer varint.
      cost = readVarint(c, buf.length) % 2 ** 32;
    } else {
      skipField(c, wireType, buf.length);
    }
  }
  const request: CheckRequest = {
    $typeName: "verdict.v1.CheckRequest",
    credential,
    action,
    tenant,
    minVersion: minVersion === 0 ? 0n : BigInt(Math.min(minVersion, Number.MAX_SAFE_INTEGER)),
  };
  if (cost !== undefined) request.cost = cost;
  return request;
}

function rateLimitSize(r: RateLimitStatus): number {
  return (
    (r.limit !== 0 ? 1 + varintSize(r.limit) : 0) +
    (r.remaining !== 0 ? 1 + varintSize(r.remaining) : 0) +
    (r.resetSeconds !== 0 ? 1 + varintSize(r.resetSeconds) : 0) +
    (r.scope !== 0 ? 1 + varintSize(r.scope) : 0) +
    (r.window !== 0 ? 1 + varintSize(r.window) : 0)
  );
}

function writeRateLimit(w: Cursor, r: RateLimitStatus, size: number): void {
  w.buf[w.pos++] = 0x3a;
  writeVarint(w, size);
  writeUint(w, 0x08, r.limit);
  writeUint(w, 0x10, r.remaining);
  writeUint(w, 0x18, r.resetSeconds);
  writeUint(w, 0x20, r.scope);
  writeUint(w, 0x28, r.window);
}

function writeUint(w: Cursor, tag: number, value: number): void {
  if (value === 0) return;
  w.buf[w.pos++] = tag;
  writeVarint(w, value);
}

/** Encodes a CheckResponse to the same bytes protobuf-es would produce. */
export function encodeCheckResponse(msg: CheckResponse): Buffer {
  const reason = msg.reason as number;
  const version = Number(msg.policyVersion);
  const messageLen = msg.message.length === 0 ? 0 : Buffer.byteLength(msg.message);
  const idLen = msg.decisionId.length === 0 ? 0 : Buffer.byteLength(msg.decisionId);
  let principal: Uint8Array | undefined;
  if (msg.principal) {
    principal = principalBytes.get(msg.principal);
    if (!principal) {
      principal = toBinary(PrincipalSchema, msg.principal);
      principalBytes.set(msg.principal, principal);
    }
  }
  const rateSize = msg.rateLimit ? rateLimitSize(msg.rateLimit) : -1;
  const size =
    (rateSize >= 0 ? 1 + varintSize(rateSize) + rateSize : 0) +
    (msg.allowed ? 2 : 0) +
    (reason !== 0 ? 1 + varintSize(reason) : 0) +
    (messageLen > 0 ? 1 + varintSize(messageLen) + messageLen : 0) +
    (principal ? 1 + varintSize(principal.length) + principal.length : 0) +
    (version !== 0 ? 1 + varintSize(version) : 0) +
    (idLen > 0 ? 1 + varintSize(idLen) + idLen : 0);
  const w: Cursor = { buf: Buffer.allocUnsafe(size), pos: 0 };
  if (msg.allowed) {
    w.buf[w.pos++] = 0x08;
    w.buf[w.pos++] = 1;
  }
  if (reason !== 0) {
    w.buf[w.pos++] = 0x10;
    writeVarint(w, reason);
  }
  if (messageLen > 0) {
    w.buf[w.pos++] = 0x1a;
    writeVarint(w, messageLen);
    w.pos += w.buf.write(msg.message, w.pos, "utf8");
  }
  if (principal) {
    w.buf[w.pos++] = 0x22;
    writeVarint(w, principal.length);
    w.buf.set(principal, w.pos);
    w.pos += principal.length;
  }
  if (version !== 0) {
    w.buf[w.pos++] = 0x28;
    writeVarint(w, version);
  }
  if (idLen > 0) {
    w.buf[w.pos++] = 0x32;
    writeVarint(w, idLen);
    w.pos += w.buf.write(msg.decisionId, w.pos, "utf8");
  }
  if (msg.rateLimit) writeRateLimit(w, msg.rateLimit, rateSize);
  return w.buf;
}
