import type { Decision } from "../../core/decision.js";

/** What the ext_authz adapter needs from the engine. */
export interface Decider {
  check(credential: string, action: string, tenant: string): Decision | Promise<Decision>;
}
