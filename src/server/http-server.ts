/**
 * The HTTP server: the same services as Connect JSON (and gRPC-web) for curl and browsers, plus
 * /metrics, /healthz (alive) and /readyz (policy loaded and not draining); CORS for the configured
 * browser origins (cors.ts).
 */
import type { DescService } from "@bufbuild/protobuf";
import { type ConnectRouter, type ServiceImpl, createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { ListenAddress } from "../config/config.js";
import type { Logger } from "../observability/logger.js";
import { type CountRequests, SOCKET_ADDRESS } from "../api/rpc.js";
import { answerClientErrors, markReached } from "./connect-errors.js";
import { type CorsSettings, createCors } from "./cors.js";

/** A service for the Connect router. */
export interface ConnectService {
  readonly service: DescService;
  readonly implementation: ServiceImpl<DescService>;
  /** Counts the calls refused before its handler (a request connect-es could not read); the handlers count the rest. */
  readonly count?: CountRequests;
}

/** An extra plain HTTP route (for example /.well-known/jwks.json). */
export type HttpRoute = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

/** The text /metrics serves and its content type. */
export interface MetricsExposition {
  readonly contentType: string;
  metrics(): Promise<string>;
}

/** Settings of the HTTP server. */
export interface HttpServerOptions {
  readonly addr: ListenAddress;
  readonly services: readonly ConnectService[];
  /** What /metrics serves (a prom-client Registry, or all workers' sum). */
  readonly metrics: MetricsExposition;
  readonly ready: () => boolean;
  readonly maxRequestBytes: number;
  readonly routes?: Readonly<Record<string, HttpRoute>>;
  /** Serves what the routes above do not (any method); returns false to let a 404 answer. */
  readonly handle?: (req: IncomingMessage, res: ServerResponse) => boolean;
  readonly logger: Logger;
  /** Which browser pages may call (CORS); absent or no origins: none. */
  readonly cors?: CorsSettings;
}

/** A running HTTP server. */
export interface RunningHttpServer {
  readonly port: number;
  close(graceMs: number): Promise<void>;
}

function send(res: ServerResponse, code: number, contentType: string, body: string): void {
  res.writeHead(code, { "content-type": contentType, "cache-control": "no-store" });
  res.end(body);
}

/** Starts the HTTP server. */
export async function startHttpServer(options: HttpServerOptions): Promise<RunningHttpServer> {
  const routes: Record<string, HttpRoute> = {
    "/metrics": async (_req, res) => {
      try {
        send(res, 200, options.metrics.contentType, await options.metrics.metrics());
      } catch (error) {
        options.logger.error("collecting metrics failed", { error });
        send(res, 500, "text/plain", "metrics unavailable\n");
      }
    },
    "/healthz": (_req, res) => send(res, 200, "application/json", '{"status":"alive"}\n'),
    "/readyz": (_req, res) =>
      options.ready() ? send(res, 200, "application/json", '{"status":"ready"}\n') : send(res, 503, "application/json", '{"status":"not ready"}\n'),
    ...options.routes,
  };
  const handler = connectNodeAdapter({
    routes(router: ConnectRouter) {
      for (const s of options.services) router.service(s.service, markReached(s.service, s.implementation));
      // connect-es refuses a request it cannot read before any interceptor or handler, some of
      // them with INTERNAL (HTTP 500): each handler is wrapped so that such a call is counted and
      // answered INVALID_ARGUMENT instead, and no internal error's message leaves
      // (connect-errors.ts). The adapter serves router.handlers.
      const counts = new Map(options.services.map((s) => [s.service.typeName, s.count]));
      const wrapped = router.handlers.map((h) => answerClientErrors(h, options.logger, counts.get(h.service.typeName)?.(h.method.name, "connect")));
      router.handlers.splice(0, router.handlers.length, ...wrapped);
    },
    readMaxBytes: options.maxRequestBytes,
    contextValues: (req) => createContextValues().set(SOCKET_ADDRESS, req.socket.remoteAddress ?? ""),
    fallback(req, res) {
      const path = (req.url ?? "/").split("?")[0];
      const route = routes[path];
      if (route && (req.method === "GET" || req.method === "HEAD")) {
        void Promise.resolve(route(req as IncomingMessage, res as ServerResponse)).catch((error) => {
          options.logger.error("http route failed", { path, error });
          if (!res.headersSent) send(res as ServerResponse, 500, "text/plain", "internal error\n");
        });
        return;
      }
      if (options.handle?.(req as IncomingMessage, res as ServerResponse)) return;
      send(res as ServerResponse, 404, "application/json", '{"code":"not_found","message":"no such route"}\n');
    },
  });
  const cors = options.cors && createCors(options.cors);
  const server = createServer({ requestTimeout: 30_000, headersTimeout: 10_000 }, cors ? (req, res) => cors(req, res) || handler(req, res) : handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.addr.port, options.addr.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: (graceMs) =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.closeAllConnections();
          resolve();
        }, graceMs);
        server.closeIdleConnections();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}
