/**
 * The action of a request no rule matches under `unmatched: conventional`: the method's verb and
 * the first path segment that names a resource.
 */
import { isValidAction } from "../../../core/patterns.js";

/** The verb of each method under `unmatched: conventional`; other methods have no action. */
const CONVENTIONAL_VERBS: ReadonlyMap<string, string> = new Map([
  ["GET", "read"],
  ["HEAD", "read"],
  ["OPTIONS", "read"],
  ["POST", "create"],
  ["PUT", "update"],
  ["PATCH", "update"],
  ["DELETE", "delete"],
]);

/** Leading path segments that name an API or its version rather than a resource. */
const API_PREFIX_SEGMENT = /^(api|v\d+((alpha|beta)\d*)?)$/;

/**
 * The conventional action of a request: the method's verb (CONVENTIONAL_VERBS) and the first path
 * segment that is not `api` or a version such as `v1` or `v2beta1`, so `DELETE /v1/orders/42` is
 * `delete:orders`. Undefined for other methods, a path with no such segment, or a segment that is
 * not a valid resource name. `path` has no query.
 */
export function conventionalAction(method: string, path: string): string | undefined {
  const verb = CONVENTIONAL_VERBS.get(method);
  if (verb === undefined) return undefined;
  for (const segment of path.split("/")) {
    if (segment === "" || API_PREFIX_SEGMENT.test(segment)) continue;
    const action = `${verb}:${segment}`;
    return isValidAction(action) ? action : undefined;
  }
  return undefined;
}
