/**
 * Decision ids, shared by every service that answers a decision (Check, CheckBatch, ext_authz), so
 * that ids from one process have one form in the audit trail.
 */
import { randomBytes } from "node:crypto";

/** Makes decision ids: a random per-process prefix and a counter (unique, cheap, sortable). */
export function createDecisionIds(): () => string {
  const prefix = randomBytes(6).toString("hex");
  let n = 0;
  return () => `${prefix}-${(++n).toString(36)}`;
}
