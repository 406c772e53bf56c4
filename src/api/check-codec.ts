/**
 * Hand-written wire codec for the hot path's two messages, CheckRequest and CheckResponse.
 * protobuf-es's reflective codec costs about 3 µs to decode the request and 20 µs to encode the
 * response on these machines, a quarter of a no-op gRPC call; this codec produces the same bytes
 * (tests compare it with protobuf-es on random messages) in a fraction of that.
 */
import { toBinary } from "@bufbuild/protobuf";
import { type CheckRequest, type CheckResponse } from "../../gen/verdict/v1/decision_pb.js";
import { type Principal, PrincipalSchema } from "../../gen/verdict/v1/types_pb.js";

/** Thrown for bytes that are not a valid message. */
export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WireError";
  }
}

const principalBytes = new WeakMap<Principal, Uint8Array>();

function readVarint(buf: Uint8Array, pos: { i: number }): number {
  let result = 0;
  let shift = 1;
  for (let n = 0; n < 10; n++) {
    if (pos.i >= buf.length) throw new WireError("truncated varint");
    const b = buf[pos.i++];
    result += (b & 0x7f) * shift;
    if (b < 0x80) return result;
    shift *= 128;
  }
  throw new WireError("varint longer than 10 bytes");
}

function skipField(buf: Uint8Array, wireType: number, pos: { i: number }): void {
  switch (wireType) {
    case 0:
      readVarint(buf, pos);
      return;
    case 1:
      pos.i += 8;
      break;
    case 2: {
      const len = readVarint(buf, pos);
      pos.i += len;
      break;
    }
    case 5:
      pos.i += 4;
      break;
    default:
      throw new WireError(`unsupported wire type ${wireType}`);
  }
  if (pos.i > buf.length) throw new WireError("truncated field");
}

function readString(buf: Buffer, pos: { i: number }): string {
  const len = readVarint(buf, pos);
  const end = pos.i + len;
  if (end > buf.length) throw new WireError("truncated string");
  const s = buf.toString("utf8", pos.i, end);
  pos.i = end;
  return s;
}

/** Decodes a CheckRequest; unknown fields are skipped, a repeated field's last value wins. */
export function decodeCheckRequest(buf: Buffer): CheckRequest {
  let credential = "";
  let action = "";
  let tenant = "";
  let minVersion = 0;
  const pos = { i: 0 };
  while (pos.i < buf.length) {
    const tag = readVarint(buf, pos);
    const field = Math.floor(tag / 8);
    const wireType = tag & 7;
    if (field === 0) throw new WireError("field number 0");
    if (field >= 1 && field <= 3) {
      if (wireType !== 2) throw new WireError(`field ${field} has wire type ${wireType}`);
      const s = readString(buf, pos);
      if (field === 1) credential = s;
      else if (field === 2) action = s;
      else tenant = s;
    } else if (field === 4) {
      if (wireType !== 0) throw new WireError(`field 4 has wire type ${wireType}`);
      minVersion = readVarint(buf, pos);
    } else {
      skipField(buf, wireType, pos);
    }
  }
  return {
    $typeName: "verdict.v1.CheckRequest",
    credential,
    action,
    tenant,
    minVersion: minVersion === 0 ? 0n : BigInt(Math.min(minVersion, Number.MAX_SAFE_INTEGER)),
  };
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(out: Buffer, pos: number, n: number): number {
  while (n >= 128) {
    out[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[pos++] = n;
  return pos;
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
  const size =
    (msg.allowed ? 2 : 0) +
    (reason !== 0 ? 1 + varintSize(reason) : 0) +
    (messageLen > 0 ? 1 + varintSize(messageLen) + messageLen : 0) +
    (principal ? 1 + varintSize(principal.length) + principal.length : 0) +
    (version !== 0 ? 1 + varintSize(version) : 0) +
    (idLen > 0 ? 1 + varintSize(idLen) + idLen : 0);
  const out = Buffer.allocUnsafe(size);
  let p = 0;
  if (msg.allowed) {
    out[p++] = 0x08;
    out[p++] = 1;
  }
  if (reason !== 0) {
    out[p++] = 0x10;
    p = writeVarint(out, p, reason);
  }
  if (messageLen > 0) {
    out[p++] = 0x1a;
    p = writeVarint(out, p, messageLen);
    p += out.write(msg.message, p, "utf8");
  }
  if (principal) {
    out[p++] = 0x22;
    p = writeVarint(out, p, principal.length);
    out.set(principal, p);
    p += principal.length;
  }
  if (version !== 0) {
    out[p++] = 0x28;
    p = writeVarint(out, p, version);
  }
  if (idLen > 0) {
    out[p++] = 0x32;
    p = writeVarint(out, p, idLen);
    p += out.write(msg.decisionId, p, "utf8");
  }
  return out;
}
