/** The return_to allow list: exact scheme, host and port, path prefix; every open-redirect trick refused. */
import { describe, expect, it } from "vitest";
import { allowedReturnUrl } from "../../src/api/oauth/return-url.js";

const ALLOWED = ["https://good.com/app", "http://127.0.0.1:8443/"];

describe("allowedReturnUrl", () => {
  it.each([
    ["https://good.com/app", "https://good.com/app"],
    ["https://good.com/app/", "https://good.com/app/"],
    ["https://good.com/app/orders?id=7#top", "https://good.com/app/orders?id=7#top"],
    ["HTTPS://GOOD.COM/app/x", "https://good.com/app/x"],
    ["https://good.com:443/app/x", "https://good.com/app/x"],
    ["http://127.0.0.1:8443/anything", "http://127.0.0.1:8443/anything"],
  ])("allows %s", (candidate, expected) => {
    expect(allowedReturnUrl(candidate, ALLOWED)).toBe(expected);
  });

  it.each([
    ["protocol-relative", "//evil.com"],
    ["protocol-relative to an allowed host", "//good.com/app"],
    ["relative path", "/app"],
    ["empty", ""],
    ["suffix host", "https://good.com.evil.com/app"],
    ["prefix host", "https://evilgood.com/app"],
    ["credentials", "https://good.com@evil.com/app"],
    ["credentials naming the good host", "https://good.com:443@evil.com/app"],
    ["other scheme", "http://good.com/app"],
    ["javascript", "javascript:alert(1)//https://good.com/app"],
    ["data", "data:text/html,<script>alert(1)</script>"],
    ["other port", "https://good.com:8443/app"],
    ["path outside the prefix", "https://good.com/apple"],
    ["dot segments out of the prefix", "https://good.com/app/../admin"],
    ["encoded dot segments out of the prefix", "https://good.com/app/%2e%2e/admin"],
    ["encoded slash in the prefix", "https://good.com/app%2f../admin"],
    ["backslash authority", "https:\\\\evil.com/app"],
    ["backslash in path", "https://good.com\\@evil.com/app"],
    ["backslash after the scheme", "https:/\\evil.com"],
    ["encoded host", "https://good.com%2eevil.com/app"],
    ["encoded at sign", "https://good.com%40evil.com/app"],
    ["tab inside", "https://good.com/app\t"],
    ["newline inside", "https://good.com/app\n//evil.com"],
    ["leading space", " https://good.com/app"],
    ["other loopback port", "http://127.0.0.1:8444/"],
    ["localhost for 127.0.0.1", "http://localhost:8443/"],
  ])("refuses %s", (_name, candidate) => {
    expect(allowedReturnUrl(candidate, ALLOWED)).toBeUndefined();
  });

  it("refuses everything with an empty allow list", () => {
    expect(allowedReturnUrl("https://good.com/app", [])).toBeUndefined();
  });
});
