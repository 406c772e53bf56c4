/**
 * The HTTP methods a rule or route limit applies to, beyond those written: what the upstream serves
 * the same way must get the same action and count against the same limit.
 */

/**
 * The methods a rule or route limit written for `methods` applies to: GET includes HEAD, which HTTP
 * serves as GET without the body (RFC 9110 section 9.3.2), so that HEAD never gets another action,
 * or another limit, than GET.
 */
export function withHead(methods: readonly string[]): string[] {
  return methods.includes("GET") && !methods.includes("HEAD") ? [...methods, "HEAD"] : [...methods];
}

const LOWER_CASE = /[a-z]/;

/**
 * `method` upper-cased: some upstreams (Express among them) serve "post" as POST, so rules and
 * route limits compare methods upper-cased. The same string, not a copy, when it has no lower-case
 * letter (as Envoy sends the standard methods).
 */
export function upperCaseMethod(method: string): string {
  return LOWER_CASE.test(method) ? method.toUpperCase() : method;
}
