/**
 * The decision audit trail: every denial and a sample of allows, written as JSON lines in batches
 * off the hot path. Recording is O(1) and allocation-light; the pending queue is bounded and every
 * record dropped because it was full is counted. Credentials are never recorded.
 *
 * Formatting and writing happen on the event loop (stdout to a pipe or a file is written
 * synchronously on Linux), so a batch is never formatted and written in one piece when it is
 * large: under a flood of denials, CHUNK records waiting are written at the next turn of the event
 * loop, and a larger batch (a burst of CheckBatch denials) in chunks with a turn between them, so
 * the Checks waiting on the event loop get their turn. Before, a full batch (10,000 records, about
 * 2.5 MB) was written at once on the timer's tick: Check's worst latency under denials was that
 * write, 50 to 60 ms (bench/RESULTS.md, issue 13 third round).
 */
import type { Decision } from "../core/decision.js";
import { createBoundedBatch } from "./bounded-batch.js";

/** What the audit needs of an answer (a Decision, or an ext_authz outcome). */
export type Audited = Pick<Decision, "allowed" | "reason" | "principal"> & { readonly version?: number; readonly rate?: Decision["rate"] };

/** The rate limit that denied a decision or that it exceeded in shadow: scope, window, limit. */
function rateLimitField(d: Audited): { scope: string; window: string; limit: number; shadow?: true } | undefined {
  const rate = d.rate;
  if (!rate) return undefined;
  if (rate.shadow && rate.allowed) return { scope: rate.shadow.scope, window: rate.shadow.window, limit: rate.shadow.limit, shadow: true };
  if (!rate.allowed && rate.bound) return { scope: rate.bound.scope, window: rate.bound.window, limit: rate.bound.limit };
  return undefined;
}

/** Settings of the decision audit. */
export interface DecisionAuditOptions {
  /** Fraction of allows recorded, 0 to 1 (denials are always recorded). */
  readonly allowSampleRate: number;
  readonly maxPending: number;
  readonly flushIntervalMs: number;
  /** Receives a batch of JSON lines (each ending in a newline). */
  readonly write: (lines: string) => void;
  readonly onDropped: () => void;
  readonly random?: () => number;
  readonly now?: () => number;
  /** Most records formatted and written in one turn of the event loop (default CHUNK; bench/audit compares). */
  readonly chunk?: number;
}

/** Records decisions and writes them in batches. */
export interface DecisionAudit {
  /** Notes one decision (sampled if it is an allow). */
  record(rpc: string, decision: Audited, action: string, tenant: string, decisionId: string): void;
  /** Writes what is pending now. */
  flush(): void;
  /** Stops the timer and writes everything pending at once; resolves when it is written. */
  close(): Promise<void>;
}

const MAX_FIELD = 256;
/** Most records formatted and written in one turn of the event loop (about 60 KB of JSON lines). */
const CHUNK = 256;

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

type Entry = [time: number, rpc: string, decision: Audited, action: string, tenant: string, decisionId: string];

/** Creates the audit trail; a rate of 0 and no denials means it writes nothing. */
export function createDecisionAudit(options: DecisionAuditOptions): DecisionAudit {
  const random = options.random ?? Math.random;
  const now = options.now ?? Date.now;
  const chunk = options.chunk ?? CHUNK;
  let closing = false;
  /** Writes entries[from..] in chunks, a turn apart (all at once when closing). */
  const writeChunks = async (entries: readonly Entry[]) => {
    for (let from = 0; from < entries.length; ) {
      if (from > 0 && !closing) await nextTurn();
      const to = closing ? entries.length : Math.min(entries.length, from + chunk);
      options.write(format(entries, from, to));
      from = to;
    }
  };
  const batch = createBoundedBatch<Entry[]>({
    flushIntervalMs: options.flushIntervalMs,
    maxPending: options.maxPending,
    writeAt: chunk,
    empty: () => [],
    size: (entries) => entries.length,
    write: (entries) => {
      if (closing || entries.length <= chunk) options.write(format(entries, 0, entries.length));
      else return writeChunks(entries);
    },
    onDropped: options.onDropped,
  });
  return {
    record(rpc, decision, action, tenant, decisionId) {
      // Shadow rate-limit hits are always recorded: they are what a limit would have denied.
      if (decision.allowed && !decision.rate?.shadow && (options.allowSampleRate <= 0 || random() >= options.allowSampleRate)) return;
      batch.room()?.push([now(), rpc, decision, action, tenant, decisionId]);
    },
    flush() {
      void batch.flush();
    },
    close() {
      closing = true;
      return batch.close();
    },
  };
}

function format(entries: readonly Entry[], from: number, to: number): string {
  let out = "";
  for (let i = from; i < to; i++) {
    const [time, rpc, d, action, tenant, decisionId] = entries[i];
    out +=
      JSON.stringify({
        time: new Date(time).toISOString(),
        level: "info",
        msg: "decision",
        component: "audit",
        rpc,
        decisionId,
        allowed: d.allowed,
        reason: d.reason,
        action: action.slice(0, MAX_FIELD),
        tenant: tenant.slice(0, MAX_FIELD),
        userId: d.principal?.userId,
        keyId: d.principal?.keyId || undefined,
        version: d.version,
        rateLimit: rateLimitField(d),
      }) + "\n";
  }
  return out;
}
