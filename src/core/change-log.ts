/**
 * The change-log vocabulary shared by the store (which writes the log), the bus (which announces
 * entries) and the engine (which applies them): what changed, named by kind and id, at a version.
 */

/**
 * Kinds of entity the change log names. `binding` changes carry the user id as their id,
 * `rate_limit` changes "scope:subject" (for example "role:batch").
 */
export type EntityKind = "tenant" | "user" | "role" | "binding" | "api_key" | "session" | "signing_key" | "rate_limit";

/** One change-log entry: entity `kind`/`id` changed at `version`. */
export interface ChangeEntry {
  readonly version: number;
  readonly kind: EntityKind;
  readonly id: string;
}
