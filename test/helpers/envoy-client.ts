/**
 * A client of Envoy's ext_authz gRPC service built from the proto files Envoy publishes (an
 * independent encoder, not Verdict's codec), and CheckRequests as Envoy's filter sends them.
 */
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { type Client, type ServiceError, credentials, loadPackageDefinition } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";

const PROTO_ROOT = join(import.meta.dirname, "../fixtures/envoy-client");

/** One header in an answer. */
export interface HeaderValueOption {
  header: { key: string; value: string; raw_value: Buffer };
  append: unknown;
  append_action: string;
  keep_empty_value: boolean;
}
/** The ext_authz answer as proto-loader decodes it. */
export interface CheckResponse {
  status: { code: number; message: string; details: unknown[] };
  http_response: "ok_response" | "denied_response" | "error_response" | undefined;
  ok_response?: {
    headers: HeaderValueOption[];
    headers_to_remove: string[];
    response_headers_to_add: HeaderValueOption[];
    query_parameters_to_set: unknown[];
    query_parameters_to_remove: string[];
    dynamic_metadata: unknown;
  };
  denied_response?: { status: { code: string }; headers: HeaderValueOption[]; body: string };
  dynamic_metadata: unknown;
}

/** The ext_authz client. */
export type EnvoyClient = Client & { Check(request: unknown, callback: (error: ServiceError | null, response: CheckResponse) => void): void };

function loadDefinition() {
  return loadSync("envoy/service/auth/v3/external_auth.proto", {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    enums: String,
    longs: String,
    defaults: true,
    oneofs: true,
  });
}

/** A CheckRequest (as envoyRequest builds it) encoded by the same independent encoder, for raw HTTP/2 tests. */
export function envoyRequestBytes(request: unknown): Buffer {
  const method = loadDefinition()["envoy.service.auth.v3.Authorization"] as unknown as { Check: { requestSerialize(r: unknown): Buffer } };
  return method.Check.requestSerialize(request);
}

/** Connects to ext_authz at `address` (host:port). */
export function envoyClient(address: string): EnvoyClient {
  const definition = loadDefinition();
  const loaded = loadPackageDefinition(definition) as unknown as { envoy: { service: { auth: { v3: { Authorization: new (a: string, c: unknown) => EnvoyClient } } } } };
  return new loaded.envoy.service.auth.v3.Authorization(address, credentials.createInsecure());
}

/** What varies between requests. */
export interface EnvoyRequest {
  method?: string;
  path?: string;
  authority?: string;
  headers?: Record<string, string>;
  contextExtensions?: Record<string, string>;
  /** The downstream client's address (source.address.socket_address.address); default 10.0.3.7. */
  source?: string;
}

/** A CheckRequest as Envoy's ext_authz filter sends it for an HTTP/2 request. */
export function envoyRequest({ method = "GET", path = "/v1/orders/42", authority = "api.shop.example", headers = {}, contextExtensions = {}, source = "10.0.3.7" }: EnvoyRequest) {
  const id = randomUUID();
  return {
    attributes: {
      source: {
        address: { socket_address: { address: source, port_value: 51234 } },
        principal: "spiffe://cluster.local/ns/shop/sa/frontend",
      },
      destination: { address: { socket_address: { address: "10.0.9.1", port_value: 8443 } } },
      request: {
        time: { seconds: String(Math.floor(Date.now() / 1000)), nanos: 0 },
        http: {
          id,
          method,
          headers: {
            ":method": method,
            ":path": path,
            ":authority": authority,
            ":scheme": "https",
            "user-agent": "curl/8.5.0",
            accept: "*/*",
            "x-request-id": id,
            "x-forwarded-proto": "https",
            ...headers,
          },
          path,
          host: authority,
          scheme: "https",
          protocol: "HTTP/2",
          size: "-1",
        },
      },
      context_extensions: contextExtensions,
      metadata_context: {
        filter_metadata: { "envoy.filters.http.jwt_authn": { fields: { verified: { bool_value: false } } } },
      },
      tls_session: { sni: authority },
    },
  };
}

/** Sends one Check built by envoyRequest. */
export function envoyCheck(client: EnvoyClient, request: EnvoyRequest): Promise<CheckResponse> {
  return new Promise((resolve, reject) => client.Check(envoyRequest(request), (error, response) => (error ? reject(error) : resolve(response))));
}

/** Header options as a name-to-value record. */
export function headerRecord(options: HeaderValueOption[]): Record<string, string> {
  return Object.fromEntries(options.map((o) => [o.header.key, o.header.value]));
}
