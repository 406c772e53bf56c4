/**
 * grpc-js's own log lines, written through Verdict's logger (`component: "grpc-js"`) with every
 * credential withheld. By default grpc-js writes to stderr, and some of its lines hold request
 * header values: a header it cannot keep as metadata (a value with a character outside printable
 * ASCII, say an API key pasted with a no-break space) is logged as "Failed to add metadata entry
 * x-api-key: <the key>", and its call trace (GRPC_TRACE=server_call with GRPC_VERBOSITY=DEBUG)
 * prints every request's headers. Secrets are never logged: such a line keeps the header's name
 * and drops its value, and any other line has the credentials Verdict knows the shape of replaced.
 */
import { setLogger } from "@grpc/grpc-js";
import { format } from "node:util";
import type { Logger } from "./logger.js";

const WITHHELD = "[withheld]";
const DROPPED_ENTRY = /Failed to add metadata entry ([^\s:]*):/;
/**
 * Header names whose values are credentials, as a JSON key ("x-api-key":"..." or "cookie":["..."]).
 * A value left open (no closing quote or bracket) runs to the end of the line: the match never
 * fails after its key, so a line of many open values is read once, not once per key.
 */
const CREDENTIAL_HEADER_JSON = /("(?:authorization|proxy-authorization|x-api-key|cookie|set-cookie)"\s*:\s*)(\[(?:[^\]"]|"(?:[^"\\]|\\.)*"?)*\]?|"(?:[^"\\]|\\.)*"?)/gi;
/** The same as `name: value` text, up to the end of the line or the next header. */
const CREDENTIAL_HEADER_TEXT = /\b((?:authorization|proxy-authorization|x-api-key|cookie|set-cookie)\s*[:=]\s*)[^\n,}\]]+/gi;
const SHAPES: ReadonlyArray<[RegExp, string]> = [
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi, `$1 ${WITHHELD}`],
  [/\bvk_[A-Za-z0-9_]+/g, `vk_${WITHHELD}`],
  [/\bvrt_[A-Za-z0-9_-]+/g, `vrt_${WITHHELD}`],
  [/\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)?/g, WITHHELD],
];

/** A grpc-js log line with the credentials it may hold withheld. */
export function withholdCredentials(line: string): string {
  const dropped = DROPPED_ENTRY.exec(line);
  // The value, and grpc-js's reason (which repeats the value), are both left out.
  if (dropped) return `Failed to add metadata entry ${dropped[1]}: grpc-js refused its value, and dropped the entry (the value is not logged)`;
  let out = line.replace(CREDENTIAL_HEADER_JSON, `$1"${WITHHELD}"`).replace(CREDENTIAL_HEADER_TEXT, `$1${WITHHELD}`);
  for (const [pattern, replacement] of SHAPES) out = out.replace(pattern, replacement);
  return out;
}

/** Sends grpc-js's log lines (process-wide) to `logger`: its errors as warnings, its info and debug as such. */
export function routeGrpcJsLogs(logger: Logger): void {
  const log = logger.child({ component: "grpc-js" });
  const line = (args: unknown[]) => ({ message: withholdCredentials(format(...args)) });
  setLogger({
    error: (...args: unknown[]) => log.warn("grpc-js", line(args)),
    info: (...args: unknown[]) => log.info("grpc-js", line(args)),
    debug: (...args: unknown[]) => log.debug("grpc-js", line(args)),
  } as Partial<Console>);
}
