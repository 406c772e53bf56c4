/** VERDICT_OAUTH_PROVIDERS and the session cookie settings: defaults, secrets, one fixture per bad input. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config/config.js";

const dir = mkdtempSync(join(tmpdir(), "verdict-oauth-"));
const secretFile = join(dir, "secret");
writeFileSync(secretFile, "file-secret-value\n");

const oidc = { id: "corp", kind: "oidc", issuer: "https://id.example.com", clientId: "verdict", clientSecretFile: secretFile };
const base = { VERDICT_PUBLIC_URL: "https://verdict.example.com/", VERDICT_OAUTH_RETURN_URLS: "https://app.example.com/after" };

function load(providers: unknown[], env: Record<string, string> = {}) {
  return loadConfig({ ...base, VERDICT_OAUTH_PROVIDERS: JSON.stringify(providers), ...env }).oauth;
}

describe("OAuth settings", () => {
  it("has safe defaults with no providers", () => {
    const o = loadConfig({}).oauth;
    expect(o.providers).toEqual([]);
    expect(o.cookie).toEqual({ name: "verdict_session", secure: true, domain: "" });
    expect(o.stateTtlMs).toBe(600_000);
  });

  it("reads an OIDC provider with defaults and a GitHub provider from an environment secret", () => {
    const o = load([oidc, { id: "gh", kind: "github", clientId: "abc", clientSecretEnv: "GH_SECRET", provision: { tenant: "acme", role: "READ", emailDomains: ["Example.COM"] } }], {
      GH_SECRET: "env-secret-value",
    });
    const [corp, gh] = o.providers;
    expect(o.publicUrl).toBe("https://verdict.example.com/");
    expect(corp.scopes).toEqual(["openid", "email", "profile"]);
    expect(corp.idTokenAlgorithm).toBe("RS256");
    expect(corp.returnUrls).toEqual(["https://app.example.com/after"]);
    expect(corp.clientSecret.reveal()).toBe("file-secret-value");
    expect(corp.provision).toBeUndefined();
    expect(corp.linkVerifiedEmail).toBe(false);
    expect(gh.tokenUrl).toBe("https://github.com/login/oauth/access_token");
    expect(gh.apiUrl).toBe("https://api.github.com");
    expect(gh.clientSecret.reveal()).toBe("env-secret-value");
    expect(gh.provision).toEqual({ tenant: "acme", role: "READ", emailDomains: ["example.com"] });
  });

  it("never prints a client secret", () => {
    const o = load([oidc]);
    const shown = [JSON.stringify(o), inspect(o, { depth: 10 }), String(o.providers[0].clientSecret)].join("\n");
    expect(shown).not.toContain("file-secret-value");
    expect(shown).toContain("[redacted]");
  });

  it.each([
    ["not JSON", "{", "VERDICT_OAUTH_PROVIDERS must be a JSON array"],
    ["not an array", "{}", "VERDICT_OAUTH_PROVIDERS must be a JSON array"],
    ["unknown kind", JSON.stringify([{ ...oidc, kind: "saml" }]), "VERDICT_OAUTH_PROVIDERS[0]"],
    ["bad id", JSON.stringify([{ ...oidc, id: "Corp/1" }]), "VERDICT_OAUTH_PROVIDERS[0].id"],
    ["duplicate id", JSON.stringify([oidc, oidc]), "listed twice"],
    ["http issuer", JSON.stringify([{ ...oidc, issuer: "http://id.example.com" }]), "VERDICT_OAUTH_PROVIDERS[0].issuer: must be an https URL"],
    ["alg none", JSON.stringify([{ ...oidc, idTokenAlgorithm: "none" }]), "idTokenAlgorithm"],
    ["HMAC alg", JSON.stringify([{ ...oidc, idTokenAlgorithm: "HS256" }]), "idTokenAlgorithm"],
    ["no secret", JSON.stringify([{ ...oidc, clientSecretFile: undefined }]), "exactly one of clientSecretFile and clientSecretEnv"],
    ["two secrets", JSON.stringify([{ ...oidc, clientSecretEnv: "X" }]), "exactly one of clientSecretFile and clientSecretEnv"],
    ["missing secret file", JSON.stringify([{ ...oidc, clientSecretFile: join(dir, "nope") }]), "cannot read"],
    ["empty env secret", JSON.stringify([{ ...oidc, clientSecretFile: undefined, clientSecretEnv: "UNSET_SECRET_VAR" }]), "the client secret is empty"],
    ["unknown field", JSON.stringify([{ ...oidc, clientSecret: "inline" }]), "VERDICT_OAUTH_PROVIDERS[0]"],
    ["scopes without openid", JSON.stringify([{ ...oidc, scopes: ["email"] }]), 'must include "openid"'],
    ["bad provision tenant", JSON.stringify([{ ...oidc, provision: { tenant: "A B", role: "READ" } }]), "provision.tenant"],
    ["return URL with a query", JSON.stringify([{ ...oidc, returnUrls: ["https://app.example.com/x?y=1"] }]), "no credentials, query or fragment"],
    ["relative return URL", JSON.stringify([{ ...oidc, returnUrls: ["/after"] }]), "is not an absolute URL"],
  ])("refuses %s", (_name, value, message) => {
    expect(() => loadConfig({ ...base, VERDICT_OAUTH_PROVIDERS: value })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, VERDICT_OAUTH_PROVIDERS: value })).toThrow(message);
  });

  it.each([
    ["VERDICT_PUBLIC_URL", "", "VERDICT_PUBLIC_URL is required"],
    ["VERDICT_PUBLIC_URL", "ftp://x", "VERDICT_PUBLIC_URL must be"],
    ["VERDICT_SESSION_COOKIE_NAME", "bad name", "VERDICT_SESSION_COOKIE_NAME"],
    ["VERDICT_SESSION_COOKIE_SECURE", "maybe", "VERDICT_SESSION_COOKIE_SECURE"],
    ["VERDICT_SESSION_COOKIE_DOMAIN", "a;b", "VERDICT_SESSION_COOKIE_DOMAIN"],
    ["VERDICT_OAUTH_STATE_TTL_SECONDS", "5", "VERDICT_OAUTH_STATE_TTL_SECONDS"],
    ["VERDICT_OAUTH_RETURN_URLS", "https://a.example/x#frag", "VERDICT_OAUTH_RETURN_URLS[0]"],
    ["VERDICT_CORS_ORIGINS", "https://a.example/path", "VERDICT_CORS_ORIGINS"],
  ])("refuses %s=%j", (name, value, message) => {
    expect(() => loadConfig({ ...base, VERDICT_OAUTH_PROVIDERS: JSON.stringify([oidc]), [name]: value })).toThrow(message);
  });
});
