/**
 * The ext_authz CheckRequest Envoy sends for a typical HTTP/2 GET with an API key (pseudo-headers,
 * ordinary headers, peer addresses, a context extension), shared by the ext_authz benches.
 */
import { create } from "@bufbuild/protobuf";
import { CheckRequestSchema as EnvoyCheckRequestSchema } from "../gen/envoy/service/auth/v3/external_auth_pb.js";

/** The request for GET `path` with `secret` in x-api-key and tenant "bench"; `extraHeaders` are added to the usual ones. */
export function envoyBenchRequest(secret: string, path: string, extraHeaders: Readonly<Record<string, string>> = {}, withMetadata = false) {
  return create(EnvoyCheckRequestSchema, {
    attributes: {
      source: { address: { address: { case: "socketAddress", value: { address: "10.0.3.7", portSpecifier: { case: "portValue", value: 51234 } } } } },
      destination: { address: { address: { case: "socketAddress", value: { address: "10.0.9.1", portSpecifier: { case: "portValue", value: 8000 } } } } },
      request: {
        time: { seconds: BigInt(Math.floor(Date.now() / 1000)), nanos: 0 },
        http: {
          id: "7d3b1f0e-1c2a-4b5d-9e8f-0a1b2c3d4e5f",
          method: "GET",
          path,
          host: "api.shop.example.com",
          scheme: "https",
          protocol: "HTTP/2",
          size: -1n,
          headers: {
            ":method": "GET",
            ":path": path,
            ":authority": "api.shop.example.com",
            ":scheme": "https",
            "x-api-key": secret,
            "x-tenant-id": "bench",
            "user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
            accept: "application/json",
            "accept-encoding": "gzip, deflate, br",
            "x-forwarded-proto": "https",
            "x-request-id": "7d3b1f0e-1c2a-4b5d-9e8f-0a1b2c3d4e5f",
            ...extraHeaders,
          },
        },
      },
      contextExtensions: { route: "orders" },
      metadataContext: withMetadata ? { filterMetadata: {} } : undefined,
    },
  });
}
