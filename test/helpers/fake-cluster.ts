/**
 * node:cluster in one process, for the IPC drivers' tests: a primary (the cluster's "message" and
 * "exit" events) and worker channels joined to it, each message copied (structuredClone) and
 * delivered on a later turn of the event loop as IPC does.
 */
import type { Cluster, Worker } from "node:cluster";
import { EventEmitter } from "node:events";
import type { WorkerChannel } from "../../src/bus/cluster.js";

/** A primary and a factory of workers joined to it: `worker()` gives its channel, its handle on the primary's side and exit(). */
export function fakeCluster() {
  const primary = new EventEmitter();
  let ids = 0;
  let answering = true;
  const worker = () => {
    const inbox = new EventEmitter();
    const channel: WorkerChannel & { connected: boolean } = {
      connected: true,
      send(message, _handle, _options, callback) {
        const copy = structuredClone(message);
        setImmediate(() => {
          if (answering) primary.emit("message", handle, copy);
          callback(null);
        });
        return true;
      },
      on: (event, listener) => inbox.on(event, listener),
      off: (event, listener) => inbox.off(event, listener),
    };
    const handle = {
      id: ++ids,
      isConnected: () => channel.connected,
      send(message: unknown, callback: () => void) {
        const copy = structuredClone(message);
        setImmediate(() => {
          inbox.emit("message", copy);
          callback();
        });
        return true;
      },
    } as unknown as Worker;
    return { channel, handle, exit: () => primary.emit("exit", handle, 0, null) };
  };
  return {
    cluster: primary as unknown as Pick<Cluster, "on" | "off">,
    worker,
    /** From now on the primary hears nothing (its answers stop). */
    silence: () => (answering = false),
    /** The primary hears again. */
    resume: () => (answering = true),
  };
}

