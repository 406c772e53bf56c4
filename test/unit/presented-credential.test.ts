/**
 * One lookup of the credential a request presents, shared by the RPC services (gRPC and Connect)
 * and the sign-in routes: a Bearer token, else the API key header, else the session cookie; a
 * malformed Bearer header presents nothing rather than letting a cookie stand in for it.
 */
import { describe, expect, it } from "vitest";
import { presentedCredential } from "../../src/api/presented-credential.js";

const carrier = (headers: Record<string, string>, cookie?: string) => ({
  header: (name: string) => headers[name],
  ...(cookie === undefined ? {} : { sessionCookie: () => cookie }),
});

describe("presentedCredential", () => {
  it.each([
    ["a Bearer token", { authorization: "Bearer tok.en.x" }, undefined, "tok.en.x"],
    ["a Bearer token, scheme in any case, padded", { authorization: "bEaReR   tok  " }, undefined, "tok"],
    ["a Bearer token before an API key and a cookie", { authorization: "Bearer tok", "x-api-key": "vk_key" }, "cookie-tok", "tok"],
    ["an API key, trimmed", { "x-api-key": "  vk_key " }, undefined, "vk_key"],
    ["an API key before a cookie", { "x-api-key": "vk_key" }, "cookie-tok", "vk_key"],
    ["the session cookie", {}, "cookie-tok", "cookie-tok"],
    ["nothing", {}, undefined, ""],
    ["nothing, without cookies (gRPC)", {}, "", ""],
    ["Bearer with no token: nothing, not the cookie", { authorization: "Bearer" }, "cookie-tok", ""],
    ["Bearer with two words: nothing, not the cookie", { authorization: "Bearer a b" }, "cookie-tok", ""],
    ["Bearer with spaces only: nothing, not the API key", { authorization: "Bearer   ", "x-api-key": "vk_key" }, undefined, ""],
    ["another scheme (Basic): the cookie", { authorization: "Basic YTpi" }, "cookie-tok", "cookie-tok"],
    ["another scheme (Basic): the API key", { authorization: "Basic YTpi", "x-api-key": "vk_key" }, undefined, "vk_key"],
    ["a scheme that only starts like Bearer: the cookie", { authorization: "Bearerx tok" }, "cookie-tok", "cookie-tok"],
  ])("%s", (_, headers, cookie, expected) => {
    expect(presentedCredential(carrier(headers, cookie))).toBe(expected);
  });
});
