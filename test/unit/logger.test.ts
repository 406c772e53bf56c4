/**
 * The structured logger writes any field value and never throws: a log call must not turn a good
 * answer into a failure (a bigint version once made a refresh-token reuse answer INTERNAL).
 */
import { describe, expect, it } from "vitest";
import { createLogger } from "../../src/observability/logger.js";

function capture() {
  const lines: string[] = [];
  const logger = createLogger("debug", { service: "t" }, (line) => void lines.push(line));
  const last = () => JSON.parse(lines[lines.length - 1]) as Record<string, unknown>;
  return { logger, lines, last };
}

describe("logger", () => {
  it("writes bigints as decimal strings, at any depth", () => {
    const { logger, last } = capture();
    logger.warn("reused", { version: 12n, nested: { big: 2n ** 70n, list: [1n] } });
    expect(last()).toMatchObject({ level: "warn", msg: "reused", service: "t", version: "12", nested: { big: "1180591620717411303424", list: ["1"] } });
  });

  it("writes errors as name, message and code, at any depth, without stacks", () => {
    const { logger, last } = capture();
    const error = Object.assign(new Error("boom"), { code: "22021" });
    logger.error("failed", { error, wrapped: { cause: new TypeError("inner") } });
    expect(last()).toEqual(expect.objectContaining({ error: { name: "Error", message: "boom", code: "22021" }, wrapped: { cause: { name: "TypeError", message: "inner" } } }));
    expect(JSON.stringify(last())).not.toContain("at ");
  });

  it("never throws: cycles are marked and a throwing toJSON leaves the message", () => {
    const { logger, lines, last } = capture();
    const cycle: Record<string, unknown> = { name: "a" };
    cycle.self = cycle;
    expect(() => logger.info("cycle", { cycle, version: 3n })).not.toThrow();
    expect(last()).toMatchObject({ msg: "cycle", cycle: { name: "a", self: "[Circular]" }, version: "3" });
    const hostile = { toJSON: () => { throw new Error("no"); } };
    expect(() => logger.info("hostile", { hostile })).not.toThrow();
    expect(last()).toMatchObject({ msg: "hostile", level: "info", logError: expect.stringContaining("no") });
    expect(lines).toHaveLength(2);
  });

  it("child loggers keep the base fields and the same safety", () => {
    const { logger, last } = capture();
    logger.child({ component: "audit", at: 1n }).info("x", { v: 2n });
    expect(last()).toMatchObject({ component: "audit", at: "1", v: "2" });
  });
});
