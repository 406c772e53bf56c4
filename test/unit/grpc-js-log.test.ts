/**
 * grpc-js's log lines lose every credential before Verdict's logger writes them
 * (src/observability/grpc-js-log.ts); the lines of a real server are read in
 * test/integration/secrets-in-logs.test.ts.
 */
import { describe, expect, it } from "vitest";
import { withholdCredentials } from "../../src/observability/grpc-js-log.js";

const KEY = "vk_abcdefghijkl_Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4abcdef";
const JWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1c2VyLTEyMyJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg";

describe("withholdCredentials", () => {
  it("keeps a dropped metadata entry's name and drops its value and grpc-js's reason (which repeats it)", () => {
    const line = `Failed to add metadata entry x-api-key: ${KEY}\u00a0. Metadata string value "${KEY}\u00a0" contains illegal characters. For more information see https://github.com/grpc/grpc-node/issues/1173`;
    expect(withholdCredentials(line)).toBe("Failed to add metadata entry x-api-key: grpc-js refused its value, and dropped the entry (the value is not logged)");
  });

  it("withholds credential headers in a call trace's JSON, whatever their value looks like", () => {
    const line = `2026-11-29T17:00:00.000Z | v1.14.3 123 | server_call | Request to /verdict.v1.AdminService/ListTenants received headers {"x-api-key":["not-a-verdict-key-shape"],"cookie":["a=b; c=d"],"authorization":["Token abc"],"user-agent":["grpc-node-js/1.14.3"]}`;
    const out = withholdCredentials(line);
    expect(out).toContain(`"x-api-key":"[withheld]"`);
    expect(out).toContain(`"cookie":"[withheld]"`);
    expect(out).toContain(`"authorization":"[withheld]"`);
    expect(out).toContain(`"user-agent":["grpc-node-js/1.14.3"]`);
    expect(out).not.toMatch(/not-a-verdict-key-shape|a=b|Token abc/);
  });

  it("withholds Verdict's credential shapes anywhere in a line, and leaves other text alone", () => {
    const line = `peer sent ${KEY} then Bearer ${JWT} and vrt_0123456789abcdefghijABCDEFGHIJ0123456789_-x; status 16 for /verdict.v1.DecisionService/Check`;
    const out = withholdCredentials(line);
    for (const secret of [KEY, JWT, "vrt_0123456789abcdefghij"]) expect(out).not.toContain(secret);
    expect(out).toContain("status 16 for /verdict.v1.DecisionService/Check");
    expect(withholdCredentials("Connection to 127.0.0.1:5432 rejected")).toBe("Connection to 127.0.0.1:5432 rejected");
  });
});

describe("withholdCredentials on hostile lines", () => {
  it("takes time linear in the line: a line of unclosed credential arrays costs about what a plain line of its length does", () => {
    const time = (line: string) => {
      let best = Infinity;
      for (let i = 0; i < 3; i++) {
        const t = performance.now();
        withholdCredentials(line);
        best = Math.min(best, performance.now() - t);
      }
      return best;
    };
    const hostile = '"x-api-key":['.repeat(2000);
    const plain = "a".repeat(hostile.length);
    // Quadratic backtracking made this about 1000 times the plain line's time at 26 KB.
    expect(time(hostile) / Math.max(time(plain), 0.05)).toBeLessThan(50);
    expect(withholdCredentials(hostile)).toBe(`"x-api-key":"[withheld]"`);
  });
});
