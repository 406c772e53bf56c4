/** Reading an ext_authz denied_response in unit tests of the adapter (protobuf-es messages). */
import type { CheckResponse } from "../../gen/envoy/service/auth/v3/external_auth_pb.js";

/** The JSON body of a denial: reason, message and decision id, plus what a 429 adds. */
export type DenialBody = { reason: string; message: string; decision_id: string } & Record<string, unknown>;

/** The gRPC code, HTTP status, headers and JSON body of a denied_response; throws for any other answer. */
export function denial(response: CheckResponse) {
  if (response.httpResponse.case !== "deniedResponse") throw new Error(`expected denied_response, got ${response.httpResponse.case}`);
  const denied = response.httpResponse.value;
  return {
    grpc: response.status!.code,
    http: denied.status!.code as number,
    headers: Object.fromEntries(denied.headers.map((h) => [h.header!.key, h.header!.value])),
    body: JSON.parse(denied.body) as DenialBody,
  };
}
