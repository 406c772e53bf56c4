/**
 * The parts of an ext_authz CheckRequest the adapter reads, the headers it reads them from, and
 * the checks a request must pass before it is judged (size limits, a well-formed path).
 */
import type { CompiledRules } from "./rules/model.js";

/**
 * The parts of an HTTP request's attributes the adapter reads. A protobuf-es
 * `AttributeContext_HttpRequest` is one; so is what decodeCheckRequest (wire.ts) produces.
 */
export interface HttpRequestView {
  readonly method: string;
  readonly path: string;
  readonly host: string;
  /** Lower-case names; repeated headers joined with ",". */
  readonly headers: Readonly<Record<string, string>>;
  readonly headerMap?: { readonly headers: readonly { readonly key: string; readonly value: string; readonly rawValue: Uint8Array }[] };
  /**
   * Set by a decoder that kept only the headers the rules read (see headerNamesRead): the count and
   * longest value of ALL the request's headers, for the request limits.
   */
  readonly headerStats?: HeaderStats;
}

/** Size of a request's header map, measured while decoding it. */
export interface HeaderStats {
  readonly count: number;
  /** In UTF-8 bytes. */
  readonly longestValueBytes: number;
}

/** The parts of a CheckRequest the adapter reads; a protobuf-es `CheckRequest` is one. */
export interface CheckRequestView {
  readonly attributes?: {
    /** The downstream peer: its socket address counts anonymous requests to rate-limited exempt routes. */
    readonly source?: { readonly address?: { readonly address: { readonly case: string | undefined; readonly value?: unknown } } };
    readonly request?: { readonly http?: HttpRequestView };
    readonly contextExtensions: Readonly<Record<string, string>>;
  };
}

/** The client's IP address as Envoy reports it (`source.address.socket_address.address`), or "" when it sent none. */
export function clientAddress(request: CheckRequestView): string {
  const address = request.attributes?.source?.address?.address;
  return address?.case === "socketAddress" ? ((address.value as { readonly address?: string }).address ?? "") : "";
}

/** Request headers with lower-case names. */
export type Headers = Readonly<Record<string, string>>;

/** The request headers as a lower-case-keyed record, from `headers` or, when that is empty, `header_map`. */
export function headersOf(http: HttpRequestView): Headers {
  if (http.headerStats !== undefined && http.headerStats.count > 0) return http.headers;
  for (const _ in http.headers) return http.headers;
  const list = http.headerMap?.headers;
  if (list === undefined || list.length === 0) return http.headers;
  const decoder = new TextDecoder();
  const record: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const header of list) {
    const key = header.key.toLowerCase();
    const value = header.value !== "" || header.rawValue.length === 0 ? header.value : decoder.decode(header.rawValue);
    const earlier = record[key];
    record[key] = earlier === undefined ? value : `${earlier},${value}`;
  }
  return record;
}

/** Why the request cannot be judged (too large, no path or a relative one), or undefined. See also request-path.ts. */
export function requestProblem(http: HttpRequestView, headers: Headers, path: string, rules: CompiledRules): string | undefined {
  const { maxHeaders, maxHeaderValueLength, maxPathLength } = rules.limits;
  const stats = http.headerStats;
  if (stats !== undefined) {
    if (stats.count > maxHeaders) return `more than ${maxHeaders} headers`;
    if (stats.longestValueBytes > maxHeaderValueLength) return `a header value is longer than ${maxHeaderValueLength} bytes`;
  } else {
    let count = 0;
    for (const name in headers) {
      if (++count > maxHeaders) return `more than ${maxHeaders} headers`;
      if (Buffer.byteLength(headers[name]) > maxHeaderValueLength) return `a header value is longer than ${maxHeaderValueLength} bytes`;
    }
  }
  if (path.length === 0) return "the request has no path";
  if (path.length > maxPathLength) return `the path is longer than ${maxPathLength} characters`;
  if (path.charCodeAt(0) !== 47 /* / */) return "the path must start with '/'";
  return undefined;
}

/**
 * Headers with which some frameworks let a client replace the request's method. A request carrying
 * one is refused: an upstream that honours it performs another method than the one checked.
 */
export const METHOD_OVERRIDE_HEADERS: readonly string[] = Object.freeze(["x-http-method-override", "x-method-override", "x-http-method"]);

/** The first method override header present, or undefined. */
export function methodOverride(headers: Headers): string | undefined {
  for (const name of METHOD_OVERRIDE_HEADERS) if (headers[name] !== undefined) return name;
  return undefined;
}

/**
 * Every request header the adapter may read under `rules` (pseudo-headers, credential and tenant
 * headers). A decoder may drop the values of all others, as long as it reports headerStats.
 */
export function headerNamesRead(rules: CompiledRules): string[] {
  const names = new Set([":path", ":method", ":authority", "host", "authorization", rules.apiKeyHeader, ...METHOD_OVERRIDE_HEADERS]);
  if (rules.cookieName !== undefined) names.add("cookie");
  for (const source of rules.tenantSources) if (source.kind === "header") names.add(source.name);
  return [...names];
}
