import type { Decision } from "../../core/decision.js";
import type { RateAnswer } from "../../core/rate-limit.js";
import type { RouteLimit } from "../../engine/rate-limiter.js";

/** What the ext_authz adapter needs from the engine. */
export interface Decider {
  /**
   * Decides, and counts `cost` units (default 1) against the credential's rate limits and, when
   * `route` is given, its limits on that route (a route that is `off` is neither counted nor limited).
   */
  check(credential: string, action: string, tenant: string, cost?: number, route?: RouteLimit): Decision | Promise<Decision>;
  /**
   * Counts `cost` units on `route` for a request to an exempt path, per `subject` (the client
   * address). A decider without it (one that does not rate limit) limits nothing there.
   */
  limitAnonymous?(subject: string, route: RouteLimit, cost: number): RateAnswer;
}
