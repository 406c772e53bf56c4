/**
 * A hand-written binary codec for the ext_authz hot path. protobuf-es's reflective fromBinary /
 * toBinary cost several times the decision itself for an Envoy CheckRequest (a map of a dozen or
 * more headers) and for a CheckResponse with header options; this codec reads only the fields the
 * adapter uses and writes the responses the adapter builds, with Envoy's field numbers (the same
 * as proto/envoy). Any response it does not write itself goes through protobuf-es, so the output
 * is always a complete, valid CheckResponse.
 */
import { toBinary } from "@bufbuild/protobuf";
import type { HeaderValueOption } from "../../../gen/envoy/config/core/v3/base_pb.js";
import { CheckResponseSchema, type CheckResponse } from "../../../gen/envoy/service/auth/v3/external_auth_pb.js";
import {
  type Cursor,
  decodeText,
  LENGTH_DELIMITED,
  readDelimited,
  readString,
  readTag,
  skipField,
  VARINT,
  varintSize,
  writeVarint,
} from "../protowire.js";
import type { CheckRequestView, HeaderStats, HttpRequestView } from "./request.js";

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type HeaderEntry = { key: string; value: string; rawValue: Uint8Array };

/** Header names whose values decodeCheckRequest keeps, as bytes to compare without decoding. */
export interface HeaderSelection {
  readonly names: readonly Buffer[];
  /** Also keep the source's socket address (the rules have route rate limits). */
  readonly sourceAddress: boolean;
}

/** Compiles the header names a decoder keeps (lower-case, as Envoy sends them), and whether it keeps the source address. */
export function selectHeaders(names: readonly string[], sourceAddress = false): HeaderSelection {
  return { names: names.map((name) => Buffer.from(name, "utf8")), sourceAddress };
}

function isSelected(buf: Buffer, start: number, end: number, selection: HeaderSelection): boolean {
  const length = end - start;
  next: for (const name of selection.names) {
    if (name.length !== length) continue;
    for (let i = 0; i < length; i++) if (name[i] !== buf[start + i]) continue next;
    return true;
  }
  return false;
}

/**
 * Decodes the fields of a CheckRequest the adapter reads (attributes.request.http: method, path,
 * host, headers, header_map; attributes.context_extensions) and skips every other field. With a
 * selection, only the selected entries of the `headers` map are turned into strings; every entry
 * is counted and measured in `headerStats`. Maps get no prototype, so no header name can reach
 * Object.prototype. Throws on malformed bytes.
 */
export function decodeCheckRequest(bytes: Uint8Array, selection?: HeaderSelection): CheckRequestView {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const c: Cursor = { buf, pos: 0 };
  const end = buf.length;
  let attributes: CheckRequestView["attributes"];
  while (c.pos < end) {
    const tag = readTag(c, end);
    if (tag === ((1 << 3) | LENGTH_DELIMITED)) attributes = readAttributes(c, readDelimited(c, end), selection);
    else skipField(c, tag & 7, end);
  }
  return { attributes };
}

function readAttributes(c: Cursor, end: number, selection: HeaderSelection | undefined): NonNullable<CheckRequestView["attributes"]> {
  const contextExtensions: Record<string, string> = Object.create(null) as Record<string, string>;
  let http: HttpRequestView | undefined;
  let sawRequest = false;
  let source: NonNullable<CheckRequestView["attributes"]>["source"];
  while (c.pos < end) {
    const tag = readTag(c, end);
    if (tag === ((1 << 3) | LENGTH_DELIMITED) && selection?.sourceAddress === true) {
      const address = readSourceAddress(c, readDelimited(c, end));
      if (address !== undefined) source = { address: { address: { case: "socketAddress", value: { address } } } };
    } else if (tag === ((4 << 3) | LENGTH_DELIMITED)) {
      sawRequest = true;
      const requestEnd = readDelimited(c, end);
      while (c.pos < requestEnd) {
        const t = readTag(c, requestEnd);
        if (t === ((2 << 3) | LENGTH_DELIMITED)) http = readHttp(c, readDelimited(c, requestEnd), selection);
        else skipField(c, t & 7, requestEnd);
      }
    } else if (tag === ((10 << 3) | LENGTH_DELIMITED)) {
      readMapEntry(c, readDelimited(c, end), contextExtensions);
    } else {
      skipField(c, tag & 7, end);
    }
  }
  return { source, request: sawRequest ? { http } : undefined, contextExtensions };
}

/** AttributeContext.Peer -> address (1) -> socket_address (1) -> address (2); undefined when absent. */
function readSourceAddress(c: Cursor, peerEnd: number): string | undefined {
  let found: string | undefined;
  while (c.pos < peerEnd) {
    const tag = readTag(c, peerEnd);
    if (tag !== ((1 << 3) | LENGTH_DELIMITED)) {
      skipField(c, tag & 7, peerEnd);
      continue;
    }
    const addressEnd = readDelimited(c, peerEnd);
    while (c.pos < addressEnd) {
      const t = readTag(c, addressEnd);
      if (t !== ((1 << 3) | LENGTH_DELIMITED)) {
        skipField(c, t & 7, addressEnd);
        continue;
      }
      const socketEnd = readDelimited(c, addressEnd);
      while (c.pos < socketEnd) {
        const u = readTag(c, socketEnd);
        if (u === ((2 << 3) | LENGTH_DELIMITED)) found = readString(c, socketEnd);
        else skipField(c, u & 7, socketEnd);
      }
    }
  }
  return found;
}

function readHttp(c: Cursor, end: number, selection: HeaderSelection | undefined): HttpRequestView {
  const http: Mutable<HttpRequestView> = { method: "", path: "", host: "", headers: Object.create(null) as Record<string, string> };
  const stats: Mutable<HeaderStats> = { count: 0, longestValueBytes: 0 };
  while (c.pos < end) {
    const tag = readTag(c, end);
    if ((tag & 7) !== LENGTH_DELIMITED) {
      skipField(c, tag & 7, end);
      continue;
    }
    switch (tag >>> 3) {
      case 2:
        http.method = readString(c, end);
        break;
      case 3:
        readHeader(c, readDelimited(c, end), http.headers as Record<string, string>, selection, stats);
        http.headerStats = stats;
        break;
      case 4:
        http.path = readString(c, end);
        break;
      case 5:
        http.host = readString(c, end);
        break;
      case 13:
        http.headerMap = { headers: readHeaderMap(c, readDelimited(c, end)) };
        break;
      default:
        skipField(c, LENGTH_DELIMITED, end);
    }
  }
  return http;
}

/** Reads one `headers` map entry: always counted and measured, kept when selected. */
function readHeader(c: Cursor, end: number, into: Record<string, string>, selection: HeaderSelection | undefined, stats: Mutable<HeaderStats>): void {
  let keyStart = 0;
  let keyEnd = 0;
  let valueStart = 0;
  let valueEnd = 0;
  while (c.pos < end) {
    const tag = readTag(c, end);
    if (tag === ((1 << 3) | LENGTH_DELIMITED)) {
      keyEnd = readDelimited(c, end);
      keyStart = c.pos;
      c.pos = keyEnd;
    } else if (tag === ((2 << 3) | LENGTH_DELIMITED)) {
      valueEnd = readDelimited(c, end);
      valueStart = c.pos;
      c.pos = valueEnd;
    } else {
      skipField(c, tag & 7, end);
    }
  }
  stats.count++;
  if (valueEnd - valueStart > stats.longestValueBytes) stats.longestValueBytes = valueEnd - valueStart;
  if (selection === undefined || isSelected(c.buf, keyStart, keyEnd, selection)) into[decodeText(c.buf, keyStart, keyEnd)] = decodeText(c.buf, valueStart, valueEnd);
}

function readMapEntry(c: Cursor, end: number, into: Record<string, string>): void {
  let key = "";
  let value = "";
  while (c.pos < end) {
    const tag = readTag(c, end);
    if (tag === ((1 << 3) | LENGTH_DELIMITED)) key = readString(c, end);
    else if (tag === ((2 << 3) | LENGTH_DELIMITED)) value = readString(c, end);
    else skipField(c, tag & 7, end);
  }
  into[key] = value;
}

function readHeaderMap(c: Cursor, end: number): HeaderEntry[] {
  const headers: HeaderEntry[] = [];
  while (c.pos < end) {
    const tag = readTag(c, end);
    if (tag !== ((1 << 3) | LENGTH_DELIMITED)) {
      skipField(c, tag & 7, end);
      continue;
    }
    const entryEnd = readDelimited(c, end);
    const entry: HeaderEntry = { key: "", value: "", rawValue: new Uint8Array(0) };
    while (c.pos < entryEnd) {
      const t = readTag(c, entryEnd);
      if (t === ((1 << 3) | LENGTH_DELIMITED)) entry.key = readString(c, entryEnd);
      else if (t === ((2 << 3) | LENGTH_DELIMITED)) entry.value = readString(c, entryEnd);
      else if (t === ((3 << 3) | LENGTH_DELIMITED)) {
        const valueEnd = readDelimited(c, entryEnd);
        entry.rawValue = Uint8Array.prototype.slice.call(c.buf, c.pos, valueEnd);
        c.pos = valueEnd;
      } else skipField(c, t & 7, entryEnd);
    }
    headers.push(entry);
  }
  return headers;
}

/**
 * Encodes a CheckResponse. Responses of the shape the adapter builds (status; ok_response with
 * headers and headers_to_remove, or denied_response) are written directly into one buffer sized
 * in advance; any other field set (dynamic metadata, status details, query parameters, append,
 * raw header values, error_response) goes through protobuf-es's toBinary instead.
 */
export function encodeCheckResponse(response: CheckResponse): Uint8Array {
  if (!isPlain(response)) return toBinary(CheckResponseSchema, response);
  const status = response.status;
  const statusSize = status === undefined ? -1 : intField(status.code) + stringField(status.message);
  const body = response.httpResponse;
  let bodySize = -1;
  if (body.case === "okResponse") {
    bodySize = headersSize(body.value.headers) + headersSize(body.value.responseHeadersToAdd);
    for (const name of body.value.headersToRemove) bodySize += 1 + lengthAndBytes(Buffer.byteLength(name));
  } else if (body.case === "deniedResponse") {
    const httpStatus = body.value.status;
    bodySize = (httpStatus === undefined ? 0 : 1 + lengthAndBytes(intField(httpStatus.code))) + headersSize(body.value.headers) + stringField(body.value.body);
  }
  const size = (statusSize < 0 ? 0 : 1 + lengthAndBytes(statusSize)) + (bodySize < 0 ? 0 : 1 + lengthAndBytes(bodySize));
  const w: Cursor = { buf: Buffer.allocUnsafe(size), pos: 0 };
  if (status !== undefined) {
    writeTag(w, 1, statusSize);
    writeInt(w, 1, status.code);
    writeString(w, 2, status.message);
  }
  if (body.case === "okResponse") {
    writeTag(w, 3, bodySize);
    writeHeaders(w, 2, body.value.headers);
    for (const name of body.value.headersToRemove) {
      writeTag(w, 5, Buffer.byteLength(name));
      w.pos += w.buf.write(name, w.pos, "utf8");
    }
    writeHeaders(w, 6, body.value.responseHeadersToAdd);
  } else if (body.case === "deniedResponse") {
    writeTag(w, 2, bodySize);
    const httpStatus = body.value.status;
    if (httpStatus !== undefined) {
      writeTag(w, 1, intField(httpStatus.code));
      writeInt(w, 1, httpStatus.code);
    }
    writeHeaders(w, 2, body.value.headers);
    writeString(w, 3, body.value.body);
  }
  return w.buf;
}

function isPlain(response: CheckResponse): boolean {
  if (response.dynamicMetadata !== undefined || (response.status !== undefined && (response.status.details.length > 0 || response.status.code < 0))) return false;
  const body = response.httpResponse;
  if (body.case === "okResponse") {
    const ok = body.value;
    return (
      ok.dynamicMetadata === undefined &&
      ok.queryParametersToSet.length === 0 &&
      ok.queryParametersToRemove.length === 0 &&
      plainHeaders(ok.headers) &&
      plainHeaders(ok.responseHeadersToAdd)
    );
  }
  if (body.case === "deniedResponse") return (body.value.status === undefined || body.value.status.code >= 0) && plainHeaders(body.value.headers);
  return body.case === undefined;
}

function plainHeaders(options: readonly HeaderValueOption[]): boolean {
  for (const option of options) {
    if (option.append !== undefined || option.header === undefined || option.header.rawValue.length > 0 || option.appendAction < 0) return false;
  }
  return true;
}

/** Bytes of a length prefix and `n` bytes. */
function lengthAndBytes(n: number): number {
  return varintSize(n) + n;
}

/** Bytes of a non-negative int32/enum field with a one-byte tag, 0 when it is the default. */
function intField(value: number): number {
  return value === 0 ? 0 : 1 + varintSize(value);
}

/** Bytes of a string field with a one-byte tag, 0 when it is empty. */
function stringField(value: string): number {
  return value === "" ? 0 : 1 + lengthAndBytes(Buffer.byteLength(value));
}

function headerValueSize(option: HeaderValueOption): number {
  return stringField(option.header!.key) + stringField(option.header!.value);
}

function optionSize(option: HeaderValueOption): number {
  return 1 + lengthAndBytes(headerValueSize(option)) + intField(option.appendAction) + (option.keepEmptyValue ? 2 : 0);
}

function headersSize(options: readonly HeaderValueOption[]): number {
  let size = 0;
  for (const option of options) size += 1 + lengthAndBytes(optionSize(option));
  return size;
}

/** Writes a length-delimited tag (field numbers below 16) and the length. */
function writeTag(w: Cursor, field: number, length: number): void {
  w.buf[w.pos++] = (field << 3) | LENGTH_DELIMITED;
  writeVarint(w, length);
}

function writeInt(w: Cursor, field: number, value: number): void {
  if (value === 0) return;
  w.buf[w.pos++] = (field << 3) | VARINT;
  writeVarint(w, value);
}

function writeString(w: Cursor, field: number, value: string): void {
  if (value === "") return;
  writeTag(w, field, Buffer.byteLength(value));
  w.pos += w.buf.write(value, w.pos, "utf8");
}

function writeHeaders(w: Cursor, field: number, options: readonly HeaderValueOption[]): void {
  for (const option of options) {
    writeTag(w, field, optionSize(option));
    writeTag(w, 1, headerValueSize(option));
    writeString(w, 1, option.header!.key);
    writeString(w, 2, option.header!.value);
    writeInt(w, 3, option.appendAction);
    if (option.keepEmptyValue) {
      w.buf[w.pos++] = (4 << 3) | VARINT;
      w.buf[w.pos++] = 1;
    }
  }
}
