import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config/config.js";

describe("CORS settings", () => {
  it("are off by default", () => {
    expect(loadConfig({}).cors).toEqual({ origins: [], allowCredentials: false });
  });

  it("keep exact origins, normalised, with or without credentials", () => {
    const c = loadConfig({ VERDICT_CORS_ORIGINS: "https://app.example.com, http://localhost:5173/", VERDICT_CORS_ALLOW_CREDENTIALS: "true" }).cors;
    expect(c).toEqual({ origins: ["https://app.example.com", "http://localhost:5173"], allowCredentials: true });
  });

  it("take * alone, for any origin, without credentials", () => {
    expect(loadConfig({ VERDICT_CORS_ORIGINS: "*" }).cors.origins).toEqual(["*"]);
  });

  it.each([
    ["* with credentials", { VERDICT_CORS_ORIGINS: "*", VERDICT_CORS_ALLOW_CREDENTIALS: "true" }, "cannot be used with VERDICT_CORS_ALLOW_CREDENTIALS=true"],
    ["* beside an origin", { VERDICT_CORS_ORIGINS: "*, https://a.example" }, "must stand alone"],
    ["a path", { VERDICT_CORS_ORIGINS: "https://a.example/app" }, "is not an origin"],
    ["a pattern", { VERDICT_CORS_ORIGINS: "https://*.example.com" }, "without wildcards"],
    ["another scheme", { VERDICT_CORS_ORIGINS: "ftp://a.example" }, "is not an origin"],
    ["a bad boolean", { VERDICT_CORS_ALLOW_CREDENTIALS: "sure" }, "VERDICT_CORS_ALLOW_CREDENTIALS must be true or false"],
  ])("refuse %s at start", (_name, env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });
});
