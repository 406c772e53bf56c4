/**
 * The ceiling of the RPC stack: a bare @grpc/grpc-js server, run as its own process, answering the
 * given method paths with an empty message (zero bytes). Requests and responses pass through as
 * bytes, so no protobuf work is done: what is left is grpc-js and node:http2. The benches load it
 * with the same method path and body as Verdict's, side by side in the same run.
 *
 *   node dist/bench/noop-server.js /verdict.v1.DecisionService/Check ...
 *
 * Binds 127.0.0.1 on a free port and prints one JSON line {"port":N} once bound. With
 * NOOP_WORKERS=N (N > 1) it forks N node:cluster workers sharing that port, the way
 * VERDICT_WORKERS does, and prints the line once all of them listen.
 */
import cluster from "node:cluster";
import { Server, ServerCredentials, type sendUnaryData } from "@grpc/grpc-js";

const workers = Number(process.env.NOOP_WORKERS ?? 1);

if (workers > 1 && cluster.isPrimary) {
  let listening = 0;
  cluster.on("listening", (_worker, address) => {
    if (++listening === workers) console.log(JSON.stringify({ port: address.port }));
  });
  for (let i = 0; i < workers; i++) cluster.fork();
  process.on("SIGTERM", () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill("SIGTERM");
    process.exit(0);
  });
} else {
  const EMPTY = Buffer.alloc(0);
  const passThrough = (b: Buffer) => b;
  const answer = (_call: unknown, callback: sendUnaryData<Buffer>) => callback(null, EMPTY);

  const server = new Server();
  for (const path of process.argv.slice(2)) server.register(path, answer, passThrough, passThrough, "unary");
  server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, port) => {
    if (error) throw error;
    if (!cluster.isWorker) console.log(JSON.stringify({ port }));
  });
  process.on("SIGTERM", () => {
    server.forceShutdown();
    process.exit(0);
  });
}
