/**
 * The rules file's `rateLimits` section: route limits parsed, validated (one fixture per kind of
 * bad input) and matched.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RulesError } from "../../src/api/envoy/rules/model.js";
import { parseRules } from "../../src/api/envoy/rules/parse.js";

const FIXTURES = join(import.meta.dirname, "../fixtures/envoy");
const BASE = "rules:\n  - match: GET /v1/orders/*\n    action: read:orders\n";

describe("rateLimits: parsing and matching", () => {
  const rules = parseRules(`${BASE}
rateLimits:
  includeHeaders: true
  routes:
    /api/chat/*: 30/min
    POST /api/auth/login: 10/min burst 5
    /api/export/**: 100/min 1000/hour shadow
    /api/hourly: 500/hour
    /api/status: none
    /api/**: 600/min
`);

  it("compiles each entry to its limits, scope route, counted under the entry as written", () => {
    const chat = rules.rateLimits.forRequest("GET", "/api/chat/42");
    expect(chat).toMatchObject({ id: "/api/chat/*", text: "30/min", off: false, limits: { minute: { limit: 30, window: "minute", scope: "route" } } });
    expect(chat!.limits.hour).toBeUndefined();
    expect(chat!.limits.burst).toBeUndefined();
    expect(rules.rateLimits.forRequest("POST", "/api/auth/login")!.limits).toMatchObject({ minute: { limit: 10 }, burst: { limit: 5, window: "burst" } });
    const exportLimits = rules.rateLimits.forRequest("GET", "/api/export/2026/all.csv")!.limits;
    expect(exportLimits.minute).toBeUndefined();
    expect(exportLimits).toMatchObject({ shadowMinute: { limit: 100, scope: "route" }, shadowHour: { limit: 1000 } });
    expect(rules.rateLimits.forRequest("GET", "/api/hourly")!.limits).toMatchObject({ hour: { limit: 500, window: "hour" } });
    expect(rules.rateLimits.forRequest("GET", "/api/status")).toMatchObject({ off: true, text: "none" });
    expect(rules.rateLimits.includeHeaders).toBe(true);
    expect(rules.rateLimits.count).toBe(6);
  });

  it("the first matching entry in file order wins; methods and the query are honoured", () => {
    expect(rules.rateLimits.forRequest("GET", "/api/auth/login")!.id).toBe("/api/**");
    expect(rules.rateLimits.forRequest("POST", "/api/auth/login?next=/x")!.id).toBe("POST /api/auth/login");
    expect(rules.rateLimits.forRequest("GET", "/api/chat")!.id).toBe("/api/**");
    expect(rules.rateLimits.forRequest("GET", "/v1/orders/1")).toBeUndefined();
  });

  it("an entry for GET counts HEAD too, in file order; an entry for HEAD alone does not count GET", () => {
    const limited = parseRules(`${BASE}
rateLimits:
  routes:
    GET /api/report: 5/min
    HEAD /api/probe: 9/min
    GET,POST /api/form: 7/min
    /api/**: 600/min
`);
    expect(limited.rateLimits.forRequest("HEAD", "/api/report")!.id).toBe("GET /api/report");
    expect(limited.rateLimits.forRequest("head", "/api/report/")!.id).toBe("GET /api/report");
    expect(limited.rateLimits.forRequest("HEAD", "/api/form")!.id).toBe("GET,POST /api/form");
    expect(limited.rateLimits.forRequest("HEAD", "/api/probe")!.id).toBe("HEAD /api/probe");
    expect(limited.rateLimits.forRequest("GET", "/api/probe")!.id).toBe("/api/**");
    expect(limited.rateLimits.forRequest("POST", "/api/report")!.id).toBe("/api/**");
  });

  it("routes are compared ignoring case with caseSensitive: false, as written otherwise", () => {
    const section = "rateLimits:\n  routes:\n    /api/admin/**: 5/min\n    POST /Login: 2/min\n";
    const exact = parseRules(`${BASE}${section}`);
    expect(exact.rateLimits.forRequest("GET", "/api/admin/users")!.id).toBe("/api/admin/**");
    expect(exact.rateLimits.forRequest("GET", "/API/admin/users")).toBeUndefined();
    expect(exact.rateLimits.forRequest("POST", "/login")).toBeUndefined();
    const caseless = parseRules(`${BASE}caseSensitive: false\n${section}`);
    expect(caseless.rateLimits.forRequest("GET", "/API/admin/users")!.id).toBe("/api/admin/**");
    expect(caseless.rateLimits.forRequest("GET", "/api/Admin/")!.id).toBe("/api/admin/**");
    expect(caseless.rateLimits.forRequest("POST", "/LOGIN/")!.id).toBe("POST /Login");
    expect(caseless.rateLimits.forRequest("POST", "/login")!.id).toBe("POST /Login");
    expect(caseless.rateLimits.forRequest("GET", "/ÄPI/admin")).toBeUndefined();
  });

  it("without the section: no route limits and no headers on allowed answers", () => {
    const plain = parseRules(BASE);
    expect(plain.rateLimits.count).toBe(0);
    expect(plain.rateLimits.includeHeaders).toBe(false);
    expect(plain.rateLimits.forRequest("GET", "/api/chat/1")).toBeUndefined();
  });

  it("accepts the long window names and extra spaces", () => {
    const long = parseRules(`${BASE}rateLimits:\n  routes:\n    /a: " 20/minute   200/h  burst 4 "\n`);
    expect(long.rateLimits.forRequest("GET", "/a")).toMatchObject({ text: "20/minute 200/h burst 4", limits: { minute: { limit: 20 }, hour: { limit: 200 }, burst: { limit: 4 } } });
  });
});

describe("rateLimits: one fixture per kind of bad input", () => {
  it.each([
    ["bad-ratelimit-unknown-key.yaml", 'rateLimits: unknown key "include_headers" (expected one of includeHeaders, routes)'],
    ["bad-ratelimit-include-headers.yaml", 'rateLimits.includeHeaders: must be true or false, got string "yes"'],
    ["bad-ratelimit-routes-list.yaml", "rateLimits.routes: must be a mapping, got a list"],
    ["bad-ratelimit-number.yaml", 'rateLimits.routes["/api/chat/*"]: must be a limit like "30/min"'],
    ["bad-ratelimit-window.yaml", 'rateLimits.routes["/api/chat/*"]: "30/sec": 30/sec: the windows are /min and /hour'],
    ["bad-ratelimit-zero.yaml", 'rateLimits.routes["/api/chat/*"]: "0/min": 0/min admits nothing; use "none"'],
    ["bad-ratelimit-burst-over-minute.yaml", 'rateLimits.routes["/api/auth/login"]: "10/min burst 50": burst (50) must not exceed /min (10)'],
    ["bad-ratelimit-burst-without-minute.yaml", 'rateLimits.routes["/api/auth/login"]: "100/hour burst 5": burst caps a 3-second slot of the minute and needs an N/min limit'],
    ["bad-ratelimit-burst-no-number.yaml", 'rateLimits.routes["/api/auth/login"]: "10/min burst": burst needs a whole number after it'],
    ["bad-ratelimit-minute-over-hour.yaml", 'rateLimits.routes["/api/search"]: "100/min 50/hour": /min (100) must not exceed /hour (50)'],
    ["bad-ratelimit-window-twice.yaml", 'rateLimits.routes["/api/search"]: "30/min 40/min": the /min limit is given twice'],
    ["bad-ratelimit-too-large.yaml", 'rateLimits.routes["/api/search"]: "2000000000/min": /min must be at most 1000000000'],
    ["bad-ratelimit-none-with-more.yaml", 'rateLimits.routes["/healthz"]: "none shadow": "none" stands alone'],
    ["bad-ratelimit-unknown-word.yaml", 'rateLimits.routes["/api/search"]: "30/min bursts 5": unexpected "bursts"'],
    ["bad-ratelimit-route-pattern.yaml", 'rateLimits.routes["/api/ch*"]: segment "ch*" mixes \'*\' with other characters'],
    ["bad-ratelimit-route-method.yaml", 'rateLimits.routes["post /api/auth/login"]: method "post" must be upper-case'],
  ])("%s is rejected naming the route", async (name, expected) => {
    const text = await readFile(join(FIXTURES, name), "utf8");
    let caught: unknown;
    try {
      parseRules(text, name);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(RulesError);
    expect((caught as RulesError).message).toContain(`${name}: ${expected}`);
  });
});
