/**
 * The IPC messages between Verdict's primary process and its workers (besides the cluster bus's):
 * start-up duties done, and the summed /metrics a worker asks for, which the primary collects from
 * every worker that is serving.
 */

/** The environment variable through which the primary tells a worker its number (1..N). */
export const WORKER_SLOT_ENV = "VERDICT_WORKER_SLOT";
/** Set to "1" when the worker replaces one while others serve: it listens only once loaded. */
export const WORKER_LISTEN_AFTER_LOAD_ENV = "VERDICT_WORKER_LISTEN_AFTER_LOAD";

/** Worker to primary: "have the start-up duties run?"; primary to workers: "they have". */
export interface DutiesMessage {
  readonly type: "verdict:duties";
  /** True from the primary once worker 1 finished them; false in a worker's question. */
  readonly done: boolean;
}

/** Worker to primary: send me every worker's metrics, summed. */
export interface MetricsRequest {
  readonly type: "verdict:metrics-request";
  readonly id: number;
}

/** Worker to primary: this worker is serving and answers metrics collections. */
export interface StartedMessage {
  readonly type: "verdict:started";
}

/** Primary to worker: send your metrics (prom-client's getMetricsAsJSON). */
export interface MetricsCollect {
  readonly type: "verdict:metrics-collect";
  readonly id: number;
}

/** Worker to primary: one worker's metrics for a collection. */
export interface MetricsPart {
  readonly type: "verdict:metrics-part";
  readonly id: number;
  readonly metrics: readonly unknown[];
}

/** Primary to worker: the aggregated exposition text, or why there is none. */
export interface MetricsResponse {
  readonly type: "verdict:metrics-response";
  readonly id: number;
  readonly text?: string;
  readonly error?: string;
}

/** One of the messages above. */
export type ClusterMessage = DutiesMessage | StartedMessage | MetricsRequest | MetricsCollect | MetricsPart | MetricsResponse;

const TYPES: ReadonlySet<string> = new Set([
  "verdict:duties",
  "verdict:started",
  "verdict:metrics-request",
  "verdict:metrics-collect",
  "verdict:metrics-part",
  "verdict:metrics-response",
]);

/** Whether an IPC message is one of Verdict's cluster messages. */
export function isClusterMessage(value: unknown): value is ClusterMessage {
  return typeof value === "object" && value !== null && TYPES.has((value as { type?: unknown }).type as string);
}
