/**
 * The invalidation bus: a doorbell that tells every replica "the policy changed up to version V,
 * these entities changed". The change log in the store is the truth; a lost message only delays a
 * replica until it polls.
 */
import type { Logger } from "../observability/logger.js";
import type { ChangeEntry } from "../core/change-log.js";

/** What one committed mutation announces. */
export interface Invalidation {
  /** The version the mutation committed at. */
  readonly version: number;
  /** The entities it changed (may be empty: then the receiver reads the change log). */
  readonly changes: readonly ChangeEntry[];
}

/** Publishes invalidations after commit and delivers them to subscribers. */
export interface Bus {
  /** "memory" or "redis". */
  readonly driver: string;
  /** Publishes; never throws (a failure is counted and left to polling). */
  publish(message: Invalidation): Promise<void>;
  /** Registers the handler; called for every message, including this replica's own. */
  subscribe(handler: (message: Invalidation) => void): void;
  /** Called after (re)connecting, so the receiver can catch up on what it may have missed. */
  onReconnect(handler: () => void): void;
  /** True while messages can be delivered (always true in memory). */
  readonly connected: boolean;
  close(): Promise<void>;
}

/**
 * Live counters of one bus. The object is updated in place, so a metrics collector can keep a
 * reference and read it at scrape time.
 */
export interface BusStats {
  /** Messages handed to the transport successfully. */
  published: number;
  /** Publishes that failed (the change is then picked up by polling). */
  publishFailures: number;
  /** Well-formed messages delivered to this bus's subscribers. */
  received: number;
  /** Messages on the channel that could not be decoded; ignored. */
  malformed: number;
  /** Resubscriptions after a lost connection (always 0 in memory). */
  reconnects: number;
}

/** A bus that also reports its counters. Every driver returns one. */
export interface MeteredBus extends Bus {
  /** Live, read-only view of the counters. */
  readonly stats: Readonly<BusStats>;
}

/** The slice of the service logger the bus drivers use; `console` satisfies it too. */
export type BusLogger = Pick<Logger, "info" | "warn" | "error">;
