/**
 * The credential a request presents, found the same way by the RPC services (gRPC and Connect)
 * and by the sign-in routes (linking an identity, signing out). On the path of Check when callers
 * must authenticate: no allocation beyond reading the headers it needs.
 */

/** Where a request's credential may be: its headers, and its session cookie over HTTP. */
export interface CredentialCarrier {
  /** The first value of a request header (lower-case name), or undefined. */
  header(name: string): string | undefined;
  /** The session cookie's value ("" when absent); absent where requests carry no cookies. */
  sessionCookie?(): string;
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;
const BEARER_SCHEME = /^Bearer(?:\s|$)/i;

/**
 * `authorization: Bearer <credential>`, else `x-api-key` (trimmed), else the session cookie; ""
 * when there is none. A Bearer header that is not one word presents nothing: the API key or a
 * cookie does not stand in for a broken credential. Another scheme (Basic: a password, or a proxy's
 * own) is no credential of this kind, and the lookup goes on.
 */
export function presentedCredential(carrier: CredentialCarrier): string {
  const auth = carrier.header("authorization");
  if (auth !== undefined) {
    const m = BEARER.exec(auth);
    if (m) return m[1];
    if (BEARER_SCHEME.test(auth)) return "";
  }
  const key = carrier.header("x-api-key");
  if (key !== undefined) return key.trim();
  return carrier.sessionCookie?.() ?? "";
}
