/**
 * The ceiling of the RPC stack: a bare @grpc/grpc-js server, run as its own process, answering the
 * given method paths with an empty message (zero bytes). Requests and responses pass through as
 * bytes, so no protobuf work is done: what is left is grpc-js and node:http2. The benches load it
 * with the same method path and body as Verdict's, side by side in the same run.
 *
 *   node dist/bench/noop-server.js /verdict.v1.DecisionService/Check ...
 *
 * Binds 127.0.0.1 on a free port and prints one JSON line {"port":N} once bound.
 */
import { Server, ServerCredentials, type sendUnaryData } from "@grpc/grpc-js";

const EMPTY = Buffer.alloc(0);
const passThrough = (b: Buffer) => b;
const answer = (_call: unknown, callback: sendUnaryData<Buffer>) => callback(null, EMPTY);

const server = new Server();
for (const path of process.argv.slice(2)) server.register(path, answer, passThrough, passThrough, "unary");
server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  console.log(JSON.stringify({ port }));
});
process.on("SIGTERM", () => {
  server.forceShutdown();
  process.exit(0);
});
