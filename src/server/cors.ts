/**
 * CORS on the HTTP port, so that pages on the configured origins can call the services with
 * @connectrpc/connect-web (Connect or gRPC-web). Off when no origin is configured: no CORS header
 * is ever sent, and browsers refuse every cross-origin call. The headers Connect needs come from
 * @connectrpc/connect's `cors` lists, plus the two credential headers Verdict reads.
 */
import { cors as connectCors } from "@connectrpc/connect";
import type { IncomingMessage, ServerResponse } from "node:http";
import { ANY_ORIGIN } from "../config/cors-settings.js";

/** Which pages may call the HTTP API from a browser. */
export interface CorsSettings {
  /** Exact origins (scheme://host[:port]), or ["*"] for any origin; empty: CORS off. */
  readonly origins: readonly string[];
  /** Send `Access-Control-Allow-Credentials: true` (never with "*"; the config refuses it). */
  readonly allowCredentials: boolean;
}

/** How long a browser may cache a preflight answer, in seconds. */
const PREFLIGHT_MAX_AGE_SECONDS = 7200;

const ALLOWED_METHODS = connectCors.allowedMethods.join(", ");
const ALLOWED_HEADERS = [...connectCors.allowedHeaders, "Authorization", "X-API-Key"].join(", ");
const EXPOSED_HEADERS = connectCors.exposedHeaders.join(", ");

/**
 * Applies CORS to one request: sets the response headers an allowed origin gets, and answers a
 * preflight (OPTIONS with Access-Control-Request-Method) itself. Returns true when the request has
 * been answered. A disallowed origin gets no CORS header (its preflight a bare 403), so the browser
 * refuses the call.
 */
export type Cors = (req: IncomingMessage, res: ServerResponse) => boolean;

/** Creates the CORS step; undefined when no origin is configured. */
export function createCors(settings: CorsSettings): Cors | undefined {
  if (settings.origins.length === 0) return undefined;
  const any = settings.origins.includes(ANY_ORIGIN);
  const allowed = new Set(settings.origins);
  return (req, res) => {
    const origin = req.headers.origin;
    const preflight = req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined;
    if (origin === undefined) return false;
    if (!any) res.appendHeader("vary", "Origin");
    if (!any && !allowed.has(origin)) {
      if (!preflight) return false;
      res.writeHead(403, { "cache-control": "no-store" });
      res.end();
      return true;
    }
    res.setHeader("access-control-allow-origin", any ? "*" : origin);
    if (settings.allowCredentials) res.setHeader("access-control-allow-credentials", "true");
    if (!preflight) {
      res.setHeader("access-control-expose-headers", EXPOSED_HEADERS);
      return false;
    }
    res.appendHeader("vary", ["Access-Control-Request-Method", "Access-Control-Request-Headers"]);
    res.writeHead(204, {
      "access-control-allow-methods": ALLOWED_METHODS,
      "access-control-allow-headers": ALLOWED_HEADERS,
      "access-control-max-age": String(PREFLIGHT_MAX_AGE_SECONDS),
    });
    res.end();
    return true;
  };
}
