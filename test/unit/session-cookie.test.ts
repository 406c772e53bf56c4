/** The session cookie's attributes follow the settings; reading finds only the exact name. */
import { describe, expect, it } from "vitest";
import { oauthCookiePath } from "../../src/api/oauth/browser-session.js";
import { cookieHeader, readCookie } from "../../src/api/session-cookie.js";

describe("session cookie", () => {
  it("is HttpOnly, SameSite=Lax, Secure unless turned off, host-only unless a domain is set", () => {
    expect(cookieHeader({ name: "s", secure: true, domain: "" }, "s", "/", "tok", 60)).toBe("s=tok; Max-Age=60; Path=/; HttpOnly; Secure; SameSite=Lax");
    expect(cookieHeader({ name: "s", secure: false, domain: "example.com" }, "s", "/", "tok", 60)).toBe("s=tok; Max-Age=60; Domain=example.com; Path=/; HttpOnly; SameSite=Lax");
  });

  it("is cleared with an empty value and Max-Age=0", () => {
    expect(cookieHeader({ name: "s", secure: true, domain: "" }, "s", "/oauth2/", "", 60)).toBe("s=; Max-Age=0; Path=/oauth2/; HttpOnly; Secure; SameSite=Lax");
  });

  it("the refresh cookie's attributes: SameSite=Strict and host-only even when the session cookie has a domain", () => {
    const settings = { name: "s", secure: true, domain: "example.com" };
    expect(cookieHeader(settings, "s_refresh", "/oauth2/", "rt", 600, { sameSite: "strict", hostOnly: true })).toBe("s_refresh=rt; Max-Age=600; Path=/oauth2/; HttpOnly; Secure; SameSite=Strict");
  });

  it("the sign-in routes' cookie path follows VERDICT_PUBLIC_URL's path (Verdict under a proxy's prefix)", () => {
    expect(oauthCookiePath("https://verdict.example.com")).toBe("/oauth2/");
    expect(oauthCookiePath("https://verdict.example.com/")).toBe("/oauth2/");
    expect(oauthCookiePath("https://example.com/auth/verdict/")).toBe("/auth/verdict/oauth2/");
    expect(oauthCookiePath("")).toBe("/oauth2/");
  });

  it("reads the named cookie only", () => {
    expect(readCookie("a=1; verdict_session=tok; b=2", "verdict_session")).toBe("tok");
    expect(readCookie("verdict_session2=x; xverdict_session=y", "verdict_session")).toBe("");
    expect(readCookie(undefined, "verdict_session")).toBe("");
    expect(readCookie("", "verdict_session")).toBe("");
  });
});
