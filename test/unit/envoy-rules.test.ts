import { mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { conventionalAction } from "../../src/api/envoy/rules/conventional-action.js";
import { createRulesHolder, type RulesHolder } from "../../src/api/envoy/rules/holder.js";
import { RULES_DEFAULTS, RulesError } from "../../src/api/envoy/rules/model.js";
import { builtInRules, parseRules } from "../../src/api/envoy/rules/parse.js";

const FIXTURES = join(import.meta.dirname, "../fixtures/envoy");
const fixture = (name: string): Promise<string> => readFile(join(FIXTURES, name), "utf8");

describe("parseRules: matching", () => {
  const rules = parseRules(
    `
rules:
  - match: GET /v1/orders/*
    action: read:orders
  - match: DELETE /v1/orders/*
    action: delete:orders
  - match: GET,HEAD /v1/orders
    action: list:orders
  - match: GET /v1/orders/*/items/**
    action: read:items
  - match: "* /v1/admin/**"
    action: admin:all
  - match: POST /v1/orders/special
    action: special:orders
  - match: POST /v1/orders/*
    action: create:orders
  - match: GET /
    action: read:home
  - match: GET /v1/trailing/
    action: read:trailing
`,
    "inline",
  );

  it.each([
    ["GET", "/v1/orders/42", "read:orders"],
    ["GET", "/v1/orders/42?expand=items&x=/a/b", "read:orders"],
    ["GET", "/v1/orders/42#frag", "read:orders"],
    ["DELETE", "/v1/orders/42", "delete:orders"],
    ["GET", "/v1/orders", "list:orders"],
    ["HEAD", "/v1/orders", "list:orders"],
    ["GET", "/v1/orders/42/items", "read:items"],
    ["GET", "/v1/orders/42/items/7/notes", "read:items"],
    ["PATCH", "/v1/admin/users/1", "admin:all"],
    ["GET", "/v1/admin", "admin:all"],
    ["POST", "/v1/orders/special", "special:orders"],
    ["POST", "/v1/orders/other", "create:orders"],
    ["GET", "/", "read:home"],
    ["GET", "/v1/trailing/", "read:trailing"],
  ])("%s %s -> %s", (method, path, action) => {
    expect(rules.actionFor(method, path)).toBe(action);
  });

  it.each([
    ["PUT", "/v1/orders/42", "method without a rule"],
    ["DELETE", "/v1/orders", "segment count differs"],
    ["GET", "/v1/orders/42/extra", "'*' matches one segment only"],
    ["GET", "/v1/orders/", "'*' does not match an empty segment"],
    ["GET", "/v1/orders/42/", "trailing slash is a different path"],
    ["GET", "/v1/orderss/42", "literal compared whole"],
    ["GET", "/v1/order/42", "literal compared whole"],
    ["GET", "/v1/trailing", "trailing slash required by its pattern"],
    ["GET", "v1/orders/42", "not absolute"],
    ["GET", "", "empty"],
  ])("%s %s matches nothing (%s)", (method, path) => {
    expect(rules.actionFor(method, path)).toBeUndefined();
  });

  it("first matching rule wins", () => {
    const ordered = parseRules(`
rules:
  - match: GET /v1/**
    action: read:everything
  - match: GET /v1/orders/*
    action: read:orders
`);
    expect(ordered.actionFor("GET", "/v1/orders/1")).toBe("read:everything");
  });

  it("a '*' method rule applies to methods named elsewhere, in file order", () => {
    const mixed = parseRules(`
rules:
  - match: "* /v1/orders/*"
    action: any:orders
  - match: GET /v1/orders/*
    action: read:orders
  - match: GET /v1/users/*
    action: read:users
`);
    expect(mixed.actionFor("GET", "/v1/orders/1")).toBe("any:orders");
    expect(mixed.actionFor("GET", "/v1/users/1")).toBe("read:users");
    expect(mixed.actionFor("OPTIONS", "/v1/orders/1")).toBe("any:orders");
    expect(mixed.actionFor("OPTIONS", "/v1/users/1")).toBeUndefined();
  });

  it("a rule for GET applies to HEAD (HTTP serves HEAD as GET without the body), in file order", () => {
    const get = parseRules(`
rules:
  - match: GET /v1/admin/reports
    action: admin:reports
  - match: HEAD /v1/own-head
    action: head:own
  - match: GET /v1/own-head
    action: read:own
  - match: "* /v1/**"
    action: read:v1
`);
    expect(get.actionFor("GET", "/v1/admin/reports")).toBe("admin:reports");
    // Not the wider catch-all a HEAD-less rule left it to.
    expect(get.actionFor("HEAD", "/v1/admin/reports")).toBe("admin:reports");
    expect(get.actionFor("HEAD", "/v1/elsewhere")).toBe("read:v1");
    expect(get.actionFor("HEAD", "/v1/own-head")).toBe("head:own");
    expect(get.actionFor("GET", "/v1/own-head")).toBe("read:own");
    // Under the default unmatched: deny, HEAD gets GET's action rather than a 403.
    expect(rules.actionFor("HEAD", "/v1/orders/42")).toBe("read:orders");
    expect(rules.actionFor("HEAD", "/v1/orders/42/items/1")).toBe("read:items");
  });

  it("a lower-case method (which some upstreams serve as the upper-case one) gets the upper-case method's action, never a wider one", () => {
    const mixed = parseRules(`
rules:
  - match: GET /v1/admin/reports
    action: admin:reports
  - match: "* /v1/**"
    action: read:v1
`);
    expect(mixed.actionFor("get", "/v1/admin/reports")).toBe("admin:reports");
    expect(mixed.actionFor("Head", "/v1/admin/reports")).toBe("admin:reports");
    expect(mixed.actionFor("get", "/v1/other")).toBe("read:v1");
    expect(rules.actionFor("get", "/v1/orders/42")).toBe("read:orders");
    expect(rules.actionFor("delete", "/v1/orders/42")).toBe("delete:orders");
    expect(rules.actionFor("put", "/v1/orders/42")).toBeUndefined();
    expect(parseRules("unmatched: conventional\nrules: []\n").actionFor("delete", "/v1/orders/42")).toBe("delete:orders");
  });

  it("under unmatched: conventional, HEAD of a path with a GET rule gets that rule's action, not the conventional one", () => {
    const conventional = parseRules("unmatched: conventional\nrules:\n  - match: GET /api/admin/reports\n    action: admin:reports\n");
    expect(conventional.actionFor("GET", "/api/admin/reports")).toBe("admin:reports");
    expect(conventional.actionFor("HEAD", "/api/admin/reports")).toBe("admin:reports");
    expect(conventional.actionFor("HEAD", "/api/orders")).toBe("read:orders");
  });

  it("a HEAD rule after a GET rule for the same path is refused: it could never match", () => {
    expect(() => parseRules("rules:\n  - match: GET /a\n    action: read:a\n  - match: HEAD /a\n    action: head:a\n")).toThrow(
      'rules[1] ("HEAD /a"): duplicates rules[0] for HEAD /a (a rule for GET applies to HEAD too: put the HEAD rule first)',
    );
    expect(parseRules("rules:\n  - match: HEAD /a\n    action: head:a\n  - match: GET /a\n    action: read:a\n").actionFor("HEAD", "/a")).toBe("head:a");
  });

  it("exempt paths default to /healthz and ignore the query", () => {
    expect(rules.isExempt("/healthz")).toBe(true);
    expect(rules.isExempt("/healthz?verbose=1")).toBe(true);
    expect(rules.isExempt("/healthz/deep")).toBe(false);
    expect(rules.isExempt("/v1/orders/1")).toBe(false);
  });

  it("an empty exempt list exempts nothing", () => {
    const none = parseRules("rules: [{match: GET /healthz, action: read:health}]\nexempt: []\n");
    expect(none.isExempt("/healthz")).toBe(false);
  });
});

describe("parseRules: options", () => {
  it("applies every default", () => {
    const rules = parseRules("rules:\n  - match: GET /a\n    action: read:a\n");
    expect(rules.ruleCount).toBe(1);
    expect(rules.tenantSources).toEqual([{ kind: "header", name: "x-tenant-id" }]);
    expect(rules.defaultTenant).toBeUndefined();
    expect(rules.credentialSources).toEqual(["bearer", "api-key"]);
    expect(rules.apiKeyHeader).toBe("x-api-key");
    expect(rules.cookieName).toBeUndefined();
    expect(rules.stripUpstream).toBe("all");
    expect(rules.actionOverrideKey).toBe("verdict.action");
    expect(rules.tenantOverrideKey).toBe("verdict.tenant");
    expect(rules.failureStatus).toBe(503);
    expect(rules.caseSensitive).toBe(true);
    expect(rules.headers).toEqual(RULES_DEFAULTS.headers);
    expect(rules.limits).toEqual({ maxHeaders: 200, maxHeaderValueLength: 16_384, maxPathLength: 4096 });
  });

  it("a cookie name adds the cookie source after bearer and api-key", () => {
    const rules = parseRules("rules: [{match: GET /a, action: read:a}]\ncredentials: {cookie: sid}\n");
    expect(rules.credentialSources).toEqual(["bearer", "api-key", "cookie"]);
    expect(rules.cookieName).toBe("sid");
  });

  it("reads every option of a full YAML file", async () => {
    const rules = parseRules(await fixture("valid.yaml"), "valid.yaml");
    expect(rules.ruleCount).toBe(5);
    expect(rules.actionFor("PUT", "/v1/orders")).toBe("write:orders");
    expect(rules.isExempt("/public/css/site.css")).toBe(true);
    expect(rules.caseSensitive).toBe(false);
    expect(rules.actionFor("PUT", "/V1/Orders")).toBe("write:orders");
    expect(rules.tenantSources).toEqual([
      { kind: "context-extension", key: "tenant" },
      { kind: "header", name: "x-org" },
      { kind: "jwt-claim", claim: "tid" },
      { kind: "host", pattern: "{tenant}.example.com", prefix: "", suffix: ".example.com" },
    ]);
    expect(rules.defaultTenant).toBe("fallback");
    expect(rules.credentialSources).toEqual(["cookie", "api-key", "bearer"]);
    expect(rules.apiKeyHeader).toBe("x-verdict-key");
    expect(rules.cookieName).toBe("vsession");
    expect(rules.stripUpstream).toBe("none");
    expect(rules.actionOverrideKey).toBe("my.action");
    expect(rules.tenantOverrideKey).toBe("my.tenant");
    expect(rules.failureStatus).toBe(403);
    expect(rules.headers).toEqual({ principal: "x-p", tenant: "x-t", roles: "x-r", decisionId: "x-d" });
    expect(rules.limits).toEqual({ maxHeaders: 10, maxHeaderValueLength: 100, maxPathLength: 50 });
  });

  it("reads JSON", async () => {
    const rules = parseRules(await fixture("valid.json"), "valid.json");
    expect(rules.actionFor("GET", "/v1/orders/1")).toBe("read:orders");
    expect(rules.actionFor("POST", "/v1/anything/at/all")).toBe("any:v1");
  });
});

describe("parseRules: caseSensitive", () => {
  const RULES_TEXT = `
rules:
  - match: GET /api/admin/**
    action: admin:all
  - match: GET /Reports/*
    action: read:reports
  - match: GET /caf%C3%A9/menu
    action: read:menu
  - match: "* /api/**"
    action: read:api
exempt: [/public/**]
`;

  it("is true by default: paths are compared as written (Envoy's default), so /API/admin is another path", () => {
    const rules = parseRules(RULES_TEXT);
    expect(rules.caseSensitive).toBe(true);
    expect(rules.actionFor("GET", "/api/admin/users")).toBe("admin:all");
    expect(rules.actionFor("GET", "/API/admin/users")).toBeUndefined();
    expect(rules.actionFor("GET", "/api/ADMIN/users")).toBe("read:api");
    expect(rules.actionFor("GET", "/reports/1")).toBeUndefined();
    expect(rules.isExempt("/PUBLIC/x")).toBe(false);
  });

  it.each([
    ["/API/admin/users", "admin:all"],
    ["/api/ADMIN/users", "admin:all"],
    ["/Api/Admin", "admin:all"],
    ["/api/admin/USERS?Q=1", "admin:all"],
    ["/reports/7", "read:reports"],
    ["/REPORTS/7", "read:reports"],
    ["/CAFÉ/Menu", "read:menu"],
    ["/café/MENU", "read:menu"],
    ["/API/other", "read:api"],
  ])("false: %s -> %s (rules compared ignoring case)", (path, action) => {
    const rules = parseRules(`caseSensitive: false\n${RULES_TEXT}`);
    expect(rules.caseSensitive).toBe(false);
    expect(rules.actionFor("GET", path)).toBe(action);
  });

  it("false: exempt paths and the conventional action ignore case too", () => {
    const rules = parseRules(`caseSensitive: false\nunmatched: conventional\n${RULES_TEXT}`);
    expect(rules.isExempt("/PUBLIC/css/site.css")).toBe(true);
    expect(rules.isExempt("/Publicity")).toBe(false);
    expect(rules.actionFor("DELETE", "/V1/Orders/42")).toBe("delete:orders");
    expect(rules.actionFor("GET", "/API/ORDERS/1")).toBe("read:api");
  });

  it("false: a path still matches segment by segment (only letters' case is ignored)", () => {
    const rules = parseRules(`caseSensitive: false\n${RULES_TEXT}`);
    expect(rules.actionFor("GET", "/api/admins/x")).toBe("read:api");
    expect(rules.actionFor("GET", "/REPORTS/7/extra")).toBeUndefined();
    expect(rules.actionFor("GET", "/cafe/menu")).toBeUndefined();
  });
});

describe("parseRules: one fixture per kind of bad input", () => {
  it.each([
    ["bad-syntax.yaml", "syntax:"],
    ["bad-duplicate-key.yaml", "syntax: Map keys must be unique"],
    ["bad-not-a-mapping.yaml", "top level: must be a mapping, got a list"],
    ["bad-unknown-top-key.yaml", 'top level: unknown key "rule"'],
    ["bad-no-rules.yaml", "rules: must be a non-empty list"],
    ["bad-unmatched.yaml", "unmatched: must be deny or conventional"],
    ["bad-rule-missing-action.yaml", 'rules[1] ("GET /v1/users/*"): "action" must be a string'],
    ["bad-rule-unknown-key.yaml", 'rules[0] ("GET /v1/orders/*"): unknown key "actions"'],
    ["bad-rule-no-method.yaml", 'rules[0] ("/v1/orders/*"): "match" must be "<METHOD> <PATH>"'],
    ["bad-rule-lowercase-method.yaml", 'rules[0] ("get /v1/orders/*"): method "get" must be upper-case'],
    ["bad-rule-relative-path.yaml", "rules[0] (\"GET v1/orders/*\"): a path pattern must start with '/'"],
    ["bad-rule-double-star-not-last.yaml", "rules[0] (\"GET /v1/**/items\"): '**' may only be the last segment"],
    ["bad-rule-partial-wildcard.yaml", 'rules[0] ("GET /v1/ord*"): segment "ord*" mixes \'*\''],
    ["bad-rule-dot-segment.yaml", "rules[0] (\"GET /v1/../admin\"): '.' and '..' segments are not allowed"],
    ["bad-rule-empty-segment.yaml", "rules[0] (\"GET /v1//orders\"): empty segment"],
    ["bad-rule-query.yaml", 'rules[0] ("GET /v1/orders?id=1"): a path pattern must not contain a query or fragment'],
    ["bad-rule-action.yaml", 'rules[0] ("GET /v1/orders/*"): action "read orders" is not "verb:resource"'],
    ["bad-rule-duplicate.yaml", 'rules[1] ("GET,HEAD /v1/orders/*"): duplicates rules[0] for GET /v1/orders/*'],
    ["bad-exempt-path.yaml", "exempt[0] (\"healthz\"): a path pattern must start with '/'"],
    ["bad-tenant-unknown-source.yaml", 'tenant.from[0]: unknown tenant source "query"'],
    ["bad-tenant-two-kinds.yaml", "tenant.from[0]: must have exactly one of header, jwtClaim, host, contextExtension; got header, jwtClaim"],
    ["bad-tenant-host-pattern.yaml", 'tenant.from[0].host: "api.example.com" must contain "{tenant}" exactly once'],
    ["bad-tenant-uppercase-header.yaml", 'tenant.from[0].header: "X-Tenant-Id" is not a lower-case HTTP header name'],
    ["bad-tenant-default.yaml", 'tenant.default: "Not A Tenant" is not a valid tenant id'],
    ["bad-credentials-cookie-without-name.yaml", 'credentials.from: "cookie" needs the cookie name'],
    ["bad-credentials-unknown-source.yaml", 'credentials.from[1]: unknown credential source "basic"'],
    ["bad-credentials-strip.yaml", 'credentials.stripUpstream: must be all, used or none (true is all, false is none), got string "yes"'],
    ["bad-failure-status.yaml", "failureStatus: must be 503 or 403, got 500"],
    ["bad-case-sensitive.yaml", 'caseSensitive: must be true or false, got string "no"'],
    ["bad-rule-duplicate-ignoring-case.yaml", 'rules[1] ("GET /V1/Orders/*"): duplicates rules[0] for GET /v1/orders/* (paths are compared ignoring case)'],
    ["bad-headers-same-name.yaml", "headers: the four header names must differ"],
    ["bad-overrides-same-key.yaml", "overrides: actionKey and tenantKey must differ"],
    ["bad-limits.yaml", "limits.maxHeaders: must be an integer from 1 to 10000, got number 0"],
    ["bad-action.json", 'rules[0] ("GET /v1/orders/*"): action "read:" is not "verb:resource"'],
  ])("%s is rejected naming the offending entry", async (name, expected) => {
    const text = await fixture(name);
    let caught: unknown;
    try {
      parseRules(text, name);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(RulesError);
    expect((caught as RulesError).message).toContain(`${name}: ${expected}`);
    expect((caught as RulesError).origin).toBe(name);
  });
});

describe("createRulesHolder", () => {
  const GOOD_A = "rules:\n  - match: GET /a\n    action: read:a\n";
  const GOOD_B = "rules:\n  - match: GET /a\n    action: read:b\n";
  const BAD = "rules:\n  - match: GET /a\n    action: nope\n";
  let dir: string;
  let holder: RulesHolder | undefined;

  const setup = async (text: string, options: { pollIntervalMs?: number; watch?: boolean } = {}): Promise<{ path: string; holder: RulesHolder }> => {
    dir = await mkdtemp(join(tmpdir(), "verdict-rules-"));
    const path = join(dir, "rules.yaml");
    await writeFile(path, text);
    holder = await createRulesHolder({ path, pollIntervalMs: options.pollIntervalMs ?? 0, watch: options.watch ?? false });
    return { path, holder };
  };

  afterEach(async () => {
    holder?.close();
    holder = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("fails to start on an invalid file, naming it", async () => {
    dir = await mkdtemp(join(tmpdir(), "verdict-rules-"));
    const path = join(dir, "rules.yaml");
    await writeFile(path, BAD);
    await expect(createRulesHolder({ path, watch: false, pollIntervalMs: 0 })).rejects.toThrow(`${path}: rules[0]`);
  });

  it("fails to start on a missing file", async () => {
    await expect(createRulesHolder({ path: join(tmpdir(), "verdict-no-such-rules.yaml"), watch: false })).rejects.toThrow(/ENOENT/);
  });

  it("rejects a negative poll interval", async () => {
    await expect(createRulesHolder({ path: join(FIXTURES, "valid.json"), pollIntervalMs: -1 })).rejects.toThrow(RangeError);
  });

  it("reload() swaps in a changed file and counts the load", async () => {
    const { path, holder } = await setup(GOOD_A);
    expect(holder.loadCount).toBe(1);
    expect(await holder.reload()).toEqual({ ok: true, changed: false });
    expect(holder.loadCount).toBe(1);
    await writeFile(path, GOOD_B);
    expect(await holder.reload()).toEqual({ ok: true, changed: true });
    expect(holder.current().actionFor("GET", "/a")).toBe("read:b");
    expect(holder.loadCount).toBe(2);
    expect(holder.failureCount).toBe(0);
  });

  it("keeps the last good rules when the new file is invalid or missing, counting failures", async () => {
    const { path, holder } = await setup(GOOD_A);
    const before = holder.current();
    await writeFile(path, BAD);
    const result = await holder.reload();
    expect(result.ok).toBe(false);
    expect(!result.ok && result.error).toContain('action "nope"');
    expect(holder.current()).toBe(before);
    expect(holder.current().actionFor("GET", "/a")).toBe("read:a");
    expect(holder.failureCount).toBe(1);
    expect(holder.lastError).toContain("rules[0]");

    await rm(path);
    expect((await holder.reload()).ok).toBe(false);
    expect(holder.failureCount).toBe(2);
    expect(holder.current()).toBe(before);

    await writeFile(path, GOOD_B);
    expect(await holder.reload()).toEqual({ ok: true, changed: true });
    expect(holder.lastError).toBeUndefined();
    expect(holder.failureCount).toBe(2);
    expect(holder.loadCount).toBe(2);
  });

  it("a reload requested during another reads the file again afterwards", async () => {
    // The case needs the first reload still running once the file is rewritten; on a busy machine
    // it sometimes finishes before the write does, so such rounds are set up again.
    for (let round = 0; round < 50; round++) {
      const { path, holder } = await setup(GOOD_A);
      let firstDone = false;
      const first = holder.reload();
      void first.then(() => (firstDone = true));
      await writeFile(path, GOOD_B);
      // One turn of the event loop: had the first reload finished, all its callbacks have run.
      await new Promise((resolve) => setImmediate(resolve));
      if (firstDone) {
        holder.close();
        await rm(dir, { recursive: true, force: true });
        continue;
      }
      const second = holder.reload();
      const third = holder.reload();
      expect(second).toBe(third);
      expect(second).not.toBe(first);
      await first;
      expect((await second).ok).toBe(true);
      expect(holder.current().actionFor("GET", "/a")).toBe("read:b");
      return;
    }
    expect.fail("the first reload always finished before the file was rewritten");
  });

  it("the periodic stat check picks up a change without fs.watch", async () => {
    const { path, holder } = await setup(GOOD_A, { pollIntervalMs: 20, watch: false });
    await writeFile(path, GOOD_B + "# changed size\n");
    await vi.waitFor(() => expect(holder.current().actionFor("GET", "/a")).toBe("read:b"), { timeout: 15_000, interval: 10 });
    expect(holder.loadCount).toBe(2);
  });

  it("fs.watch picks up a file replaced by rename (as editors and ConfigMaps do)", async () => {
    const { path, holder } = await setup(GOOD_A, { watch: true });
    const next = join(dir, "rules.yaml.tmp");
    await writeFile(next, GOOD_B);
    await rename(next, path);
    await vi.waitFor(() => expect(holder.current().actionFor("GET", "/a")).toBe("read:b"), { timeout: 15_000, interval: 10 });
  });

  it("a watched change to an invalid file is counted and reported, and the old rules stay", async () => {
    dir = await mkdtemp(join(tmpdir(), "verdict-rules-"));
    const path = join(dir, "rules.yaml");
    await writeFile(path, GOOD_A);
    const reports: unknown[] = [];
    holder = await createRulesHolder({ path, pollIntervalMs: 20, watch: true, onReload: (r) => reports.push(r) });
    await writeFile(path, BAD);
    await vi.waitFor(() => expect(holder!.failureCount).toBeGreaterThanOrEqual(1), { timeout: 15_000, interval: 10 });
    expect(holder.current().actionFor("GET", "/a")).toBe("read:a");
    expect(reports).toContainEqual(expect.objectContaining({ ok: false }));
  });
});

describe("unmatched: conventional and the built-in rules", () => {
  it.each([
    ["GET", "/v1/orders/42", "read:orders"],
    ["HEAD", "/orders", "read:orders"],
    ["OPTIONS", "/api/orders", "read:orders"],
    ["POST", "/api/v2/orders", "create:orders"],
    ["PUT", "/v2beta1/orders/7", "update:orders"],
    ["PATCH", "/v1alpha/orders/7", "update:orders"],
    ["DELETE", "/v1/orders/42/items/3", "delete:orders"],
    ["GET", "/version/1", "read:version"],
    ["TRACE", "/v1/orders", undefined],
    ["constructor", "/v1/orders", undefined],
    ["GET", "/", undefined],
    ["GET", "/v1", undefined],
    ["GET", "/api/v1/", undefined],
    ["GET", "/v1/ord%20ers", undefined],
  ])("%s %s is %s", (method, path, expected) => {
    expect(conventionalAction(method, path)).toBe(expected);
  });

  it("built-in rules: conventional actions, x-tenant-id, /healthz exempt, every other default", () => {
    const rules = builtInRules();
    expect(rules.unmatched).toBe("conventional");
    expect(rules.ruleCount).toBe(0);
    expect(rules.actionFor("DELETE", "/v1/orders/42?force=1")).toBe("delete:orders");
    expect(rules.isExempt("/healthz")).toBe(true);
    expect(rules.tenantSources).toEqual([{ kind: "header", name: "x-tenant-id" }]);
    expect(rules.credentialSources).toEqual(["bearer", "api-key"]);
    expect(rules.stripUpstream).toBe("all");
    expect(rules.failureStatus).toBe(503);
  });

  it("explicit rules win over the convention; deny (the default) leaves unmatched requests without an action", () => {
    const text = "rules:\n  - match: GET /v1/orders/*/invoice\n    action: read:invoices\n";
    const conventional = parseRules(`unmatched: conventional\n${text}`);
    expect(conventional.actionFor("GET", "/v1/orders/1/invoice")).toBe("read:invoices");
    expect(conventional.actionFor("GET", "/v1/orders/1")).toBe("read:orders");
    const strict = parseRules(text);
    expect(strict.unmatched).toBe("deny");
    expect(strict.actionFor("GET", "/v1/orders/1")).toBeUndefined();
  });
});
