/**
 * Raw calls to the HTTP port in the protocols connect-node serves there (Connect unary and
 * streaming, gRPC-web, gRPC over HTTP/1.1), with the bytes the test chooses, and readers of their
 * answers: for tests that send malformed requests or look at error answers as a client sees them.
 */
import { request } from "node:http";

/** A message in the 5-byte envelope of gRPC, gRPC-web and Connect streaming (flags, big-endian length). */
export function envelope(bytes: Buffer, flags = 0): Buffer {
  const prefix = Buffer.alloc(5);
  prefix[0] = flags;
  prefix.writeUInt32BE(bytes.length, 1);
  return Buffer.concat([prefix, bytes]);
}

/** What the server answered: status, headers, the whole body and the trailers. */
export interface HttpAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  readonly trailers: Record<string, string | undefined>;
}

/** POSTs `body` over HTTP/1.1 (node:http, which reads trailers as gRPC needs). */
export function post(base: string, path: string, headers: Record<string, string>, body: Buffer | string): Promise<HttpAnswer> {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: "POST", headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), trailers: res.trailers }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** The status in a gRPC-web body's trailer envelope (flag 0x80), or in a gRPC response's trailers. */
export function grpcStatusOf(answer: HttpAnswer): { code: number; message: string } {
  let fields: Record<string, string | undefined> = answer.trailers;
  for (let at = 0; at + 5 <= answer.body.length; at += 5 + answer.body.readUInt32BE(at + 1)) {
    if ((answer.body[at] & 0x80) === 0) continue;
    const text = answer.body.subarray(at + 5, at + 5 + answer.body.readUInt32BE(at + 1)).toString();
    fields = Object.fromEntries(text.split("\r\n").filter(Boolean).map((line) => [line.slice(0, line.indexOf(":")).trim().toLowerCase(), line.slice(line.indexOf(":") + 1).trim()]));
  }
  return { code: Number(fields["grpc-status"] ?? NaN), message: decodeURIComponent(fields["grpc-message"] ?? "") };
}

/** The error of a Connect streaming response's end-stream envelope (flag 0x02). */
export function endStreamError(answer: HttpAnswer): { code?: string; message?: string } | undefined {
  for (let at = 0; at + 5 <= answer.body.length; at += 5 + answer.body.readUInt32BE(at + 1)) {
    if ((answer.body[at] & 0x02) === 0) continue;
    return (JSON.parse(answer.body.subarray(at + 5, at + 5 + answer.body.readUInt32BE(at + 1)).toString()) as { error?: { code?: string; message?: string } }).error;
  }
  return undefined;
}
