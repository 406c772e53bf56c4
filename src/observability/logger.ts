/**
 * Structured logs: one JSON object per line on stdout. Callers pass fields, never secrets. Any
 * field value is written (bigints as strings, errors as name/message/code); logging never throws.
 */

/** Log levels in increasing severity. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A structured logger. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

function errorFields(error: Error): Record<string, unknown> {
  return { name: error.name, message: error.message, ...("code" in error ? { code: error.code } : {}) };
}

/** JSON for any field value: bigints as decimal strings, errors as name/message/code, at any depth. */
function safeValue(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Error) return errorFields(value);
  return value;
}

/**
 * Serialises one entry; never throws. A value JSON cannot hold (a cycle, a throwing toJSON) is
 * replaced, so a log call can never turn a good answer into a failure.
 */
function serialise(entry: Record<string, unknown>): string {
  try {
    return JSON.stringify(entry, safeValue);
  } catch {
    const seen = new WeakSet<object>();
    try {
      return JSON.stringify(entry, (key, value: unknown) => {
        const safe = safeValue(key, value);
        if (typeof safe !== "object" || safe === null) return safe;
        if (seen.has(safe)) return "[Circular]";
        seen.add(safe);
        return safe;
      });
    } catch (error) {
      return JSON.stringify({ time: entry.time, level: entry.level, msg: entry.msg, logError: `fields not serialisable: ${(error as Error).message}` });
    }
  }
}

/** Creates a logger writing JSON lines at or above `level` to `write` (stdout by default). */
export function createLogger(
  level: LogLevel = "info",
  base: Record<string, unknown> = {},
  write: (line: string) => void = (line) => process.stdout.write(line + "\n"),
): Logger {
  const min = RANK[level];
  const log = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[lvl] < min) return;
    const entry: Record<string, unknown> = { time: new Date().toISOString(), level: lvl, msg, ...base };
    if (fields) Object.assign(entry, fields);
    write(serialise(entry));
  };
  return {
    debug: (m, f) => log("debug", m, f),
    info: (m, f) => log("info", m, f),
    warn: (m, f) => log("warn", m, f),
    error: (m, f) => log("error", m, f),
    child: (fields) => createLogger(level, { ...base, ...fields }, write),
  };
}
