/**
 * How the CLI prints: aligned tables for people, JSON (protobuf JSON for messages) for scripts.
 */
import { type DescMessage, type MessageShape, toJson } from "@bufbuild/protobuf";
import type { CliIo } from "./io.js";

/** The two output formats. */
export type OutputFormat = "table" | "json";

/** Prints rows under headers, columns padded to the widest cell. */
export function printTable(io: CliIo, headers: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join("  ").trimEnd();
  io.stdout.write(`${[line(headers), ...rows.map(line)].join("\n")}\n`);
}

/** Prints a value as indented JSON. */
export function printJson(io: CliIo, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Prints a protobuf message as its canonical JSON (field names as the Connect JSON API answers),
 * with fields at their defaults written out (`"allowed": false`), so scripts need no fallbacks.
 */
export function printMessage<D extends DescMessage>(io: CliIo, schema: D, message: MessageShape<D>): void {
  printJson(io, toJson(schema, message, { alwaysEmitImplicit: true }));
}

/** A time in ms since the epoch as ISO 8601, "-" for 0 (never / unset). */
export function formatTime(ms: bigint | number): string {
  const n = Number(ms);
  return n === 0 ? "-" : new Date(n).toISOString().replace(/\.\d{3}Z$/, "Z");
}
