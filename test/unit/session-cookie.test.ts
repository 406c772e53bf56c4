/** The session cookie's attributes follow the settings; reading finds only the exact name. */
import { describe, expect, it } from "vitest";
import { cookieHeader, readCookie } from "../../src/api/session-cookie.js";

describe("session cookie", () => {
  it("is HttpOnly, SameSite=Lax, Secure unless turned off, host-only unless a domain is set", () => {
    expect(cookieHeader({ name: "s", secure: true, domain: "" }, "s", "/", "tok", 60)).toBe("s=tok; Max-Age=60; Path=/; HttpOnly; Secure; SameSite=Lax");
    expect(cookieHeader({ name: "s", secure: false, domain: "example.com" }, "s", "/", "tok", 60)).toBe("s=tok; Max-Age=60; Domain=example.com; Path=/; HttpOnly; SameSite=Lax");
  });

  it("is cleared with an empty value and Max-Age=0", () => {
    expect(cookieHeader({ name: "s", secure: true, domain: "" }, "s", "/oauth2/", "", 60)).toBe("s=; Max-Age=0; Path=/oauth2/; HttpOnly; Secure; SameSite=Lax");
  });

  it("reads the named cookie only", () => {
    expect(readCookie("a=1; verdict_session=tok; b=2", "verdict_session")).toBe("tok");
    expect(readCookie("verdict_session2=x; xverdict_session=y", "verdict_session")).toBe("");
    expect(readCookie(undefined, "verdict_session")).toBe("");
    expect(readCookie("", "verdict_session")).toBe("");
  });
});
