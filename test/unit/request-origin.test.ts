/** Which requests may act on the browser's cookies (refresh, logout), and which origins are trusted. */
import { describe, expect, it } from "vitest";
import { createOriginCheck, trustedOrigins } from "../../src/api/oauth/request-origin.js";

describe("cookie routes' origin check", () => {
  const check = createOriginCheck(["https://verdict.example.com", "https://app.example.com"]);
  const cases: [string, string | undefined, string | undefined, boolean][] = [
    ["Verdict's own page", "https://verdict.example.com", "same-origin", true],
    ["a trusted app on the same site", "https://app.example.com", "same-site", true],
    ["a trusted app, a browser without Fetch Metadata", "https://app.example.com", undefined, true],
    ["a sibling subdomain not trusted", "https://evil.example.com", "same-site", false],
    ["another site", "https://evil.test", "cross-site", false],
    ["another port of a trusted host", "https://app.example.com:8443", "same-site", false],
    ["an opaque origin (sandboxed frame, data: URL)", "null", "cross-site", false],
    ["the same origin by Fetch Metadata, whatever Origin says (Verdict reached by another name)", "http://localhost:8080", "same-origin", true],
    ["the person's own navigation", undefined, "none", true],
    ["cross-site by Fetch Metadata without Origin", undefined, "cross-site", false],
    ["same-site by Fetch Metadata without Origin", undefined, "same-site", false],
    ["no browser: neither header (curl, a server)", undefined, undefined, true],
  ];
  it.each(cases)("%s", (_name, origin, secFetchSite, accepted) => {
    expect(check({ origin, secFetchSite })).toBe(accepted);
  });
});

describe("trusted origins", () => {
  it("are the public URL's origin, and the CORS origins only when they may send credentials", () => {
    const cors = { origins: ["https://app.example.com"], allowCredentials: true };
    expect(trustedOrigins("https://verdict.example.com/auth", cors)).toEqual(["https://verdict.example.com", "https://app.example.com"]);
    expect(trustedOrigins("https://verdict.example.com", { ...cors, allowCredentials: false })).toEqual(["https://verdict.example.com"]);
    expect(trustedOrigins("", { origins: ["*"], allowCredentials: false })).toEqual([]);
  });
});
