/**
 * An OIDC provider's discovery failing: sign-ins are refused with that failure, and a Retry-After,
 * without asking the provider again until the retry interval has passed; then it is asked once.
 */
import { describe, expect, it } from "vitest";
import { SignInError, createProviderClient } from "../../src/api/oauth/providers.js";
import { parseOAuthProviders } from "../../src/config/oauth-settings.js";

const ISSUER = "https://op.example.com";
const [settings] = parseOAuthProviders(
  "VERDICT_OAUTH_PROVIDERS",
  JSON.stringify([{ kind: "oidc", id: "op", issuer: ISSUER, clientId: "verdict", clientSecretEnv: "OP_CLIENT_SECRET" }]),
  { OP_CLIENT_SECRET: "op-client-secret" },
  ["https://app.example.com/"],
  "https://verdict.example.com",
);

const discovery = {
  issuer: ISSUER,
  authorization_endpoint: `${ISSUER}/auth`,
  token_endpoint: `${ISSUER}/token`,
  jwks_uri: `${ISSUER}/jwks`,
};

async function refusal(p: Promise<unknown>): Promise<SignInError> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SignInError);
  return error as SignInError;
}

describe("OIDC discovery failing", () => {
  it("is asked again once per retry interval, however many sign-ins start meanwhile", async () => {
    let nowMs = 1_000_000;
    let asked = 0;
    let up = false;
    const provider = createProviderClient(settings, {
      publicUrl: "https://verdict.example.com",
      discoveryRetryMs: 10_000,
      now: () => nowMs,
      fetch: async () => {
        asked++;
        return up ? Response.json(discovery) : new Response("down for maintenance", { status: 503 });
      },
    });

    const first = await refusal(provider.start());
    expect([first.code, first.status, first.retryAfterSeconds, asked]).toEqual(["provider_unusable", 502, 0, 1]);
    nowMs += 4_000;
    for (let i = 0; i < 50; i++) {
      const again = await refusal(provider.start());
      expect([again.code, again.status, again.retryAfterSeconds]).toEqual(["provider_unusable", 502, 6]);
    }
    expect(asked).toBe(1);

    up = true;
    nowMs += 6_000;
    const started = await provider.start();
    expect(started.url.origin + started.url.pathname).toBe(`${ISSUER}/auth`);
    expect(asked).toBe(2);
    await provider.start();
    expect(asked).toBe(2);
  });
});
