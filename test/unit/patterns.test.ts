import { describe, expect, it } from "vitest";
import { PatternError, compilePatterns, isValidAction, patternProblem, unionMatchers, validatePatterns, patternsCover } from "../../src/core/patterns.js";

describe("compilePatterns", () => {
  const cases: Array<[patterns: string[], action: string, expected: boolean]> = [
    [["*"], "read:orders", true],
    [["*"], "delete:users", true],
    [["read:*"], "read:orders", true],
    [["read:*"], "read:users", true],
    [["read:*"], "write:orders", false],
    [["read:*"], "reader:orders", false],
    [["*:users"], "read:users", true],
    [["*:users"], "delete:users", true],
    [["*:users"], "read:users2", false],
    [["*:users"], "read:orders", false],
    [["read:orders"], "read:orders", true],
    [["read:orders"], "read:orders/1", false],
    [["read:orders"], "write:orders", false],
    [["read:orders", "write:invoices"], "write:invoices", true],
    [["read:orders", "*:invoices", "list:*"], "list:anything", true],
    [["read:orders", "*:invoices", "list:*"], "void:invoices", true],
    [["read:orders", "*:invoices", "list:*"], "write:orders", false],
    [[], "read:orders", false],
  ];
  it.each(cases)("%j permits %s: %s", (patterns, action, expected) => {
    expect(compilePatterns(patterns).matches(action)).toBe(expected);
  });

  it("unions matchers", () => {
    const m = unionMatchers([compilePatterns(["read:*"]), compilePatterns(["*:users"])]);
    expect(m.matches("read:orders")).toBe(true);
    expect(m.matches("delete:users")).toBe(true);
    expect(m.matches("delete:orders")).toBe(false);
  });
});

describe("pattern validation", () => {
  const bad: Array<[pattern: string, fragment: string]> = [
    ["", "empty"],
    ["read", "verb:resource"],
    ["*:*", 'use "*"'],
    ["re*:orders", "whole verb"],
    ["read:ord*", "whole resource"],
    ["read:", "resource"],
    [":orders", "verb"],
    ["1read:orders", "start with a letter"],
    ["read:or ders", "resource"],
    ["read:a:b", "resource"],
    ["x".repeat(300), "longer than"],
  ];
  it.each(bad)("rejects %j", (pattern, fragment) => {
    expect(patternProblem(pattern)).toContain(fragment);
    expect(() => validatePatterns(["read:*", pattern])).toThrow(PatternError);
    try {
      validatePatterns([pattern]);
    } catch (e) {
      expect((e as Error).message).toContain(JSON.stringify(pattern));
    }
  });

  it.each(["*", "read:*", "*:users", "read:orders", "get.v2:api/v1/orders", "Read_x:a-b.c"])("accepts %j", (p) => {
    expect(patternProblem(p)).toBeUndefined();
  });

  it("validates actions without wildcards", () => {
    expect(isValidAction("read:orders")).toBe(true);
    expect(isValidAction("read:*")).toBe(false);
    expect(isValidAction("*")).toBe(false);
    expect(isValidAction("")).toBe(false);
    expect(isValidAction("read")).toBe(false);
    expect(isValidAction("read:" + "a".repeat(300))).toBe(false);
  });
});

describe("patternsCover", () => {
  const cases: Array<[string[], string, boolean]> = [
    [["*"], "*", true],
    [["*"], "read:orders", true],
    [["read:*"], "*", false],
    [["read:*"], "read:orders", true],
    [["read:*"], "read:*", true],
    [["read:*"], "*:orders", false],
    [["read:*"], "write:orders", false],
    [["*:orders"], "read:orders", true],
    [["*:orders"], "*:orders", true],
    [["*:orders"], "read:*", false],
    [["read:orders"], "read:orders", true],
    [["read:orders"], "read:*", false],
    [["read:orders"], "*:orders", false],
    [["read:orders", "*:users"], "delete:users", true],
    [[], "read:orders", false],
  ];
  it.each(cases)("%j covers %s: %s", (outer, inner, expected) => {
    expect(patternsCover(outer, inner)).toBe(expected);
  });

  it("agrees with the compiled matcher on every action of a small universe", () => {
    const verbs = ["read", "write"];
    const resources = ["orders", "users"];
    const actions = verbs.flatMap((v) => resources.map((r) => `${v}:${r}`));
    const patterns = ["*", ...verbs.map((v) => `${v}:*`), ...resources.map((r) => `*:${r}`), ...actions];
    for (const outer of patterns) {
      for (const inner of patterns) {
        const outerMatcher = compilePatterns([outer]);
        const innerMatcher = compilePatterns([inner]);
        // Over this universe plus unseen verbs and resources, coverage means: inner allows => outer allows.
        const universe = [...actions, "delete:orders", "read:invoices", "delete:invoices"];
        const semantic = universe.every((a) => !innerMatcher.matches(a) || outerMatcher.matches(a));
        expect({ outer, inner, covers: patternsCover([outer], inner) }).toEqual({ outer, inner, covers: semantic });
      }
    }
  });
});
