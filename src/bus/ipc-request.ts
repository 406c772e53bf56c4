/**
 * Request and answer over the IPC channel between a worker and the primary of VERDICT_WORKERS > 1,
 * for what the primary keeps on behalf of all its workers when there is no Redis (the summed
 * rate-limit counts, the failed-login counts). A worker's request carries an id; the primary
 * answers the worker that asked, with the same id. The channel is ordered and lossless while
 * open; a request the primary does not answer in time is rejected.
 */
import type { Cluster, Worker } from "node:cluster";
import type { WorkerChannel } from "./cluster.js";

interface Envelope {
  readonly type: string;
  readonly id: number;
  readonly body: unknown;
}

function isEnvelope(value: unknown, type: string): value is Envelope {
  return typeof value === "object" && value !== null && (value as { type?: unknown }).type === type && typeof (value as { id?: unknown }).id === "number";
}

const answerType = (type: string) => `${type}:answer`;

/** The worker's side of one kind of request. */
export interface IpcRequester {
  /** Sends `body` to the primary and resolves with its answer; rejects without a channel or an answer within `timeoutMs`. */
  request(body: unknown, timeoutMs: number): Promise<unknown>;
  /** Stops listening; requests still waiting are rejected. */
  close(): void;
}

/** Creates the worker's side of requests of `type` (a name no other message uses). */
export function createIpcRequester(type: string, channel: WorkerChannel = process): IpcRequester {
  const pending = new Map<number, { resolve: (body: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();
  const answers = answerType(type);
  let requests = 0;
  const onMessage = (raw: unknown): void => {
    if (!isEnvelope(raw, answers)) return;
    const waiting = pending.get(raw.id);
    if (!waiting) return;
    pending.delete(raw.id);
    clearTimeout(waiting.timer);
    waiting.resolve(raw.body);
  };
  channel.on("message", onMessage);
  return {
    request(body, timeoutMs) {
      return new Promise((resolve, reject) => {
        if (!channel.send || channel.connected !== true) return reject(new Error("no IPC channel to the primary process"));
        const id = ++requests;
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`the primary process did not answer within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, { resolve, reject, timer });
        const envelope: Envelope = { type, id, body };
        channel.send(envelope, undefined, undefined, (error) => {
          if (!error || !pending.delete(id)) return;
          clearTimeout(timer);
          reject(error);
        });
      });
    },
    close() {
      channel.off("message", onMessage);
      for (const { reject, timer } of pending.values()) {
        clearTimeout(timer);
        reject(new Error("closed"));
      }
      pending.clear();
    },
  };
}

/**
 * The primary's side: answers every worker's requests of `type` with what `answer` returns (or
 * resolves to) for them. Returns a function that stops answering.
 */
export function answerIpcRequests(cluster: Pick<Cluster, "on" | "off">, type: string, answer: (worker: Worker, body: unknown) => unknown): () => void {
  const answers = answerType(type);
  const onMessage = (worker: Worker, raw: unknown): void => {
    if (!isEnvelope(raw, type)) return;
    // An answer that fails is not sent: the worker's request times out, as if the primary were gone.
    void Promise.resolve()
      .then(() => answer(worker, raw.body))
      .then((body) => {
        const envelope: Envelope = { type: answers, id: raw.id, body };
        if (worker.isConnected()) worker.send(envelope, () => undefined);
      }, () => undefined);
  };
  cluster.on("message", onMessage);
  return () => cluster.off("message", onMessage);
}
