import { createHmac, generateKeyPairSync, type KeyObject } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { SignJWT } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { createRemoteKeySet } from "../../src/authn/tokens/jwks-client.js";
import { createTokenVerifier, type ExternalIssuerConfig, type TokenResult } from "../../src/authn/tokens/jwt.js";

const IDP = "https://idp.example";
const AUDIENCE = "verdict-api";
const NOW = Date.now();

interface TestKey {
  readonly kid: string;
  readonly alg: "RS256" | "ES256" | "EdDSA";
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

function makeKey(kid: string, alg: TestKey["alg"]): TestKey {
  const pair =
    alg === "RS256"
      ? generateKeyPairSync("rsa", { modulusLength: 2048 })
      : alg === "ES256"
        ? generateKeyPairSync("ec", { namedCurve: "P-256" })
        : generateKeyPairSync("ed25519");
  return { kid, alg, ...pair };
}

function jwk(key: TestKey): Record<string, unknown> {
  return { ...key.publicKey.export({ format: "jwk" }), kid: key.kid, alg: key.alg, use: "sig" };
}

/** Signs with jose, an independent implementation. */
async function joseToken(key: TestKey, claims: Record<string, unknown> = {}, kid = key.kid): Promise<string> {
  return new SignJWT({ tenant_id: "acme", sid: "s-1", ...claims })
    .setProtectedHeader({ alg: key.alg, kid })
    .setIssuer(IDP)
    .setAudience(AUDIENCE)
    .setSubject("ext-user")
    .setIssuedAt(Math.floor(NOW / 1000))
    .setExpirationTime(Math.floor(NOW / 1000) + 3600)
    .sign(key.privateKey);
}

const rsa = makeKey("rsa-1", "RS256");
const ec = makeKey("ec-1", "ES256");
const ed = makeKey("ed-1", "EdDSA");

type Mode = "ok" | "down" | "garbage" | "empty" | "hang";
const provider = { mode: "ok" as Mode, keys: [rsa, ec, ed], requests: 0, delayMs: 0 };
let server: Server;
let jwksUrl: string;

beforeAll(async () => {
  server = createServer((_req, res) => {
    provider.requests += 1;
    const respond = (): void => {
      if (provider.mode === "hang") return;
      if (provider.mode === "down") {
        res.writeHead(503).end("unavailable");
      } else if (provider.mode === "garbage") {
        res.writeHead(200, { "content-type": "application/json" }).end("<html>not json");
      } else {
        const keys = provider.mode === "empty" ? [] : provider.keys.map(jwk);
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys }));
      }
    };
    if (provider.delayMs > 0) setTimeout(respond, provider.delayMs);
    else respond();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  Object.assign(provider, { mode: "ok", keys: [rsa, ec, ed], requests: 0, delayMs: 0 });
});

function issuer(overrides: Partial<ExternalIssuerConfig> = {}): ExternalIssuerConfig {
  return { issuer: IDP, audience: AUDIENCE, jwksUrl, algorithms: ["RS256", "ES256", "EdDSA"], ...overrides };
}

function verifierFor(overrides: Partial<ExternalIssuerConfig> = {}) {
  return createTokenVerifier({ external: [issuer(overrides)], cacheSize: 0 });
}

function reasonOf(result: TokenResult): string {
  return result.ok ? "ok" : result.reason;
}

describe("external issuer tokens", () => {
  it.each([rsa, ec, ed])("verifies a jose-signed $alg token synchronously once the key set is loaded", async (key) => {
    const verifier = verifierFor();
    await verifier.warm(NOW);
    const result = verifier.verify(await joseToken(key), NOW);
    expect(result).not.toBeInstanceOf(Promise);
    expect(result).toMatchObject({ ok: true, claims: { issuer: IDP, subject: "ext-user", tenant: "acme", sessionId: "s-1", own: false, audience: [AUDIENCE] } });
    expect(provider.requests).toBe(1);
  });

  it("fetches the key set on first use and then verifies", async () => {
    const verifier = verifierFor();
    const pending = verifier.verify(await joseToken(ed), NOW);
    expect(pending).toBeInstanceOf(Promise);
    expect(reasonOf(await pending)).toBe("ok");
    expect(provider.requests).toBe(1);
  });

  it("pins algorithms per issuer", async () => {
    const verifier = verifierFor({ algorithms: ["RS256"] });
    await verifier.warm(NOW);
    expect(reasonOf(verifier.verify(await joseToken(rsa), NOW) as TokenResult)).toBe("ok");
    expect(reasonOf(verifier.verify(await joseToken(ec), NOW) as TokenResult)).toBe("TOKEN_ALGORITHM_NOT_ALLOWED");
  });

  it("rejects a token whose alg does not match the key its kid names", async () => {
    const verifier = verifierFor();
    await verifier.warm(NOW);
    expect(reasonOf(verifier.verify(await joseToken(ec, {}, ed.kid), NOW) as TokenResult)).toBe("TOKEN_ALGORITHM_NOT_ALLOWED");
  });

  it("rejects HS256 signed with the provider's RSA public key PEM as the secret (algorithm confusion)", async () => {
    const verifier = verifierFor({ algorithms: ["RS256"] });
    await verifier.warm(NOW);
    const pem = rsa.publicKey.export({ format: "pem", type: "spki" }) as string;
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256", kid: rsa.kid })
      .setIssuer(IDP)
      .setAudience(AUDIENCE)
      .setSubject("attacker")
      .setExpirationTime(Math.floor(NOW / 1000) + 3600)
      .sign(new TextEncoder().encode(pem));
    expect(createHmac("sha256", pem).update(token.slice(0, token.lastIndexOf("."))).digest("base64url")).toBe(token.split(".")[2]);
    expect(reasonOf(verifier.verify(token, NOW) as TokenResult)).toBe("TOKEN_ALGORITHM_NOT_ALLOWED");
  });

  it("rejects wrong audience and tampering for external tokens", async () => {
    const verifier = verifierFor();
    await verifier.warm(NOW);
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: "RS256", kid: rsa.kid })
      .setIssuer(IDP)
      .setAudience("other-api")
      .setSubject("u")
      .setExpirationTime(Math.floor(NOW / 1000) + 60)
      .sign(rsa.privateKey);
    expect(reasonOf(verifier.verify(token, NOW) as TokenResult)).toBe("TOKEN_WRONG_AUDIENCE");
    const [h, , s] = (await joseToken(rsa)).split(".");
    const forgedPayload = Buffer.from(JSON.stringify({ iss: IDP, aud: AUDIENCE, sub: "admin", exp: 9e9 })).toString("base64url");
    expect(reasonOf(verifier.verify(`${h}.${forgedPayload}.${s}`, NOW) as TokenResult)).toBe("TOKEN_BAD_SIGNATURE");
  });
});

describe("remote key set refresh", () => {
  it("serves the cached set past the TTL while refetching in the background", async () => {
    const verifier = verifierFor({ cacheTtlMs: 1000, cooldownMs: 100 });
    await verifier.warm(NOW);
    const token = await joseToken(ed);
    expect(reasonOf(verifier.verify(token, NOW + 500) as TokenResult)).toBe("ok");
    expect(provider.requests).toBe(1);
    provider.delayMs = 50;
    const stale = verifier.verify(token, NOW + 1500);
    expect(stale).not.toBeInstanceOf(Promise);
    expect(reasonOf(stale as TokenResult)).toBe("ok");
    expect(verifier.stats().keySets[IDP].fetches).toBe(2);
    await vi.waitFor(() => expect(verifier.stats().keySets[IDP].lastSuccessMs).toBe(NOW + 1500));
    expect(provider.requests).toBe(2);
  });

  it("refetches for an unknown kid at most once per cooldown", async () => {
    const verifier = verifierFor({ cooldownMs: 30_000 });
    await verifier.warm(NOW);
    const unknown = await joseToken(ed, {}, "not-there");
    const blocked = verifier.verify(unknown, NOW + 1000);
    expect(blocked).not.toBeInstanceOf(Promise);
    expect(reasonOf(blocked as TokenResult)).toBe("TOKEN_UNKNOWN_KEY");
    expect(provider.requests).toBe(1);
    const retried = verifier.verify(unknown, NOW + 30_000);
    expect(retried).toBeInstanceOf(Promise);
    expect(reasonOf(await retried)).toBe("TOKEN_UNKNOWN_KEY");
    expect(provider.requests).toBe(2);
    expect(reasonOf(verifier.verify(unknown, NOW + 40_000) as TokenResult)).toBe("TOKEN_UNKNOWN_KEY");
    expect(provider.requests).toBe(2);
  });

  it("shares one fetch among 100 concurrent tokens with unknown kids", async () => {
    const verifier = verifierFor();
    await verifier.warm(NOW - 60_000);
    provider.delayMs = 30;
    const tokens = await Promise.all(Array.from({ length: 100 }, (_, i) => joseToken(ed, {}, `unknown-${i}`)));
    const before = provider.requests;
    const results = tokens.map((token) => verifier.verify(token, NOW));
    expect(results.every((r) => r instanceof Promise)).toBe(true);
    expect((await Promise.all(results)).map(reasonOf)).toEqual(Array(100).fill("TOKEN_UNKNOWN_KEY"));
    expect(provider.requests - before).toBe(1);
  });

  it("picks up a key rotated in at the provider through the unknown-kid refetch", async () => {
    const verifier = verifierFor({ cooldownMs: 1000 });
    await verifier.warm(NOW - 5000);
    const next = makeKey("ed-2", "EdDSA");
    provider.keys = [rsa, ec, next];
    provider.delayMs = 20;
    const tokens = await Promise.all(Array.from({ length: 100 }, () => joseToken(next)));
    const results = await Promise.all(tokens.map((token) => verifier.verify(token, NOW)));
    expect(results.map(reasonOf)).toEqual(Array(100).fill("ok"));
    expect(provider.requests).toBe(2);
    expect(reasonOf(verifier.verify(await joseToken(next), NOW) as TokenResult)).toBe("ok");
    expect(reasonOf(verifier.verify(await joseToken(ed), NOW + 1) as TokenResult)).toBe("TOKEN_UNKNOWN_KEY");
  });

  it.each(["down", "garbage", "empty"] as const)("keeps the last good set when the provider is %s, counting failures", async (mode) => {
    const verifier = verifierFor({ cacheTtlMs: 1000, cooldownMs: 500 });
    await verifier.warm(NOW);
    const token = await joseToken(rsa);
    provider.mode = mode;
    expect(reasonOf(verifier.verify(token, NOW + 2000) as TokenResult)).toBe("ok");
    await vi.waitFor(() => expect(verifier.stats().keySets[IDP].failures).toBe(1));
    expect(reasonOf(verifier.verify(token, NOW + 2100) as TokenResult)).toBe("ok");
    expect(provider.requests).toBe(2);
    expect(reasonOf(await verifier.verify(await joseToken(ed, {}, "new-kid"), NOW + 2600))).toBe("TOKEN_UNKNOWN_KEY");
    expect(verifier.stats().keySets[IDP]).toMatchObject({ fetches: 3, failures: 2, keys: 3, lastSuccessMs: NOW });
    expect(verifier.stats().keySets[IDP].lastError).toMatch(mode === "down" ? /HTTP 503/ : mode === "garbage" ? /not JSON/ : /no usable signing key/);
    expect(reasonOf(verifier.verify(token, NOW + 2700) as TokenResult)).toBe("ok");
  });

  it("times out a hanging provider and keeps the last good set", async () => {
    const verifier = verifierFor({ timeoutMs: 100, cacheTtlMs: 1000, cooldownMs: 10 });
    await verifier.warm(NOW);
    provider.mode = "hang";
    const token = await joseToken(ec);
    expect(reasonOf(verifier.verify(token, NOW + 5000) as TokenResult)).toBe("ok");
    await vi.waitFor(() => expect(verifier.stats().keySets[IDP].failures).toBe(1), { timeout: 10_000 });
    expect(verifier.stats().keySets[IDP].lastError).toMatch(/abort|timeout/i);
    expect(reasonOf(verifier.verify(token, NOW + 5100) as TokenResult)).toBe("ok");
  });

  it("counts a network failure from the injected fetch and never rejects", async () => {
    const fetch = vi.fn(async () => {
      throw new Error("connection refused");
    });
    const keySet = createRemoteKeySet({ url: "https://idp.example/jwks", fetch: fetch as unknown as typeof globalThis.fetch });
    await expect(keySet.refresh(NOW)).resolves.toBeUndefined();
    expect(keySet.requestRefresh(NOW + 1)).toBeUndefined();
    expect(keySet.stats()).toMatchObject({ fetches: 1, failures: 1, lastError: "connection refused", keys: 0 });
  });

  it("skips unusable keys in a set: HMAC, weak RSA, wrong use, alg mismatch, junk", async () => {
    const weakJwk = { ...generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({ format: "jwk" }), kid: "weak" };
    const body = {
      keys: [{ kty: "oct", k: "c2VjcmV0", kid: "hmac" }, weakJwk, { ...jwk(ed), kid: "enc", use: "enc" }, { ...jwk(ec), kid: "liar", alg: "RS256" }, jwk(ed), "junk", null],
    };
    const fetch = async (): Promise<Response> => new Response(JSON.stringify(body), { status: 200 });
    const keySet = createRemoteKeySet({ url: "https://idp.example/jwks", fetch });
    await keySet.refresh(NOW);
    expect(keySet.stats().keys).toBe(1);
    expect(keySet.get(ed.kid, NOW)?.alg).toBe("EdDSA");
    expect(keySet.get("hmac", NOW)).toBeUndefined();
  });

  it("validates options at creation", () => {
    expect(() => createRemoteKeySet({ url: "http://idp.example/jwks" })).toThrow(/https/);
    expect(() => createRemoteKeySet({ url: "ftp://127.0.0.1/jwks" })).toThrow(/https/);
    expect(() => createRemoteKeySet({ url: "not a url" })).toThrow(/not a URL/);
    expect(() => createRemoteKeySet({ url: "https://idp.example/jwks", cacheTtlMs: 0 })).toThrow(/cacheTtlMs/);
    expect(() => createRemoteKeySet({ url: "https://idp.example/jwks", timeoutMs: Number.NaN })).toThrow(/timeoutMs/);
    expect(() => createRemoteKeySet({ url: "https://idp.example/jwks", cooldownMs: -1 })).toThrow(/cooldownMs/);
    expect(createRemoteKeySet({ url: "http://127.0.0.1:9/jwks" }).url).toBe("http://127.0.0.1:9/jwks");
    expect(createRemoteKeySet({ url: "http://[::1]:9/jwks" }).url).toBe("http://[::1]:9/jwks");
  });
});

describe("cached claims follow the key set", () => {
  function cachingVerifier(overrides: Partial<ExternalIssuerConfig> = {}) {
    return createTokenVerifier({ external: [issuer({ cacheTtlMs: 1000, cooldownMs: 100, ...overrides })] });
  }

  it("drops cached claims of a key the provider no longer publishes, keeping the others", async () => {
    const verifier = cachingVerifier();
    await verifier.warm(NOW);
    const removed = await joseToken(rsa);
    const kept = await joseToken(ed);
    for (const token of [removed, kept, removed, kept]) expect(reasonOf(verifier.verify(token, NOW) as TokenResult)).toBe("ok");
    expect(verifier.stats()).toMatchObject({ signatureChecks: 2, cacheHits: 2 });

    provider.keys = [ec, ed];
    await verifier.warm(NOW + 10);
    expect(verifier.stats().keySets[IDP]).toMatchObject({ fetches: 2, keys: 2 });
    expect(reasonOf(await verifier.verify(removed, NOW + 20))).toBe("TOKEN_UNKNOWN_KEY");
    expect(reasonOf(verifier.verify(kept, NOW + 20) as TokenResult)).toBe("ok");
    // The unchanged key's entry survived the refresh: no signature was checked again for it.
    expect(verifier.stats()).toMatchObject({ signatureChecks: 2, cacheHits: 3 });
  });

  it("drops cached claims when the provider publishes other key material under the same kid", async () => {
    const verifier = cachingVerifier();
    await verifier.warm(NOW);
    const token = await joseToken(rsa);
    expect(reasonOf(verifier.verify(token, NOW) as TokenResult)).toBe("ok");
    provider.keys = [makeKey(rsa.kid, "RS256"), ec, ed];
    await verifier.warm(NOW + 10);
    expect(reasonOf(verifier.verify(token, NOW + 20) as TokenResult)).toBe("TOKEN_BAD_SIGNATURE");
  });

  it("refreshes a stale key set for cached tokens too, then refuses the ones whose key is gone", async () => {
    const verifier = cachingVerifier();
    await verifier.warm(NOW);
    const token = await joseToken(rsa);
    expect(reasonOf(verifier.verify(token, NOW) as TokenResult)).toBe("ok");
    provider.keys = [ec, ed];
    // Past the TTL a hit is answered from the set in hand and starts a refresh in the background.
    expect(reasonOf(verifier.verify(token, NOW + 1500) as TokenResult)).toBe("ok");
    await vi.waitFor(() => expect(verifier.stats().keySets[IDP].lastSuccessMs).toBe(NOW + 1500));
    expect(reasonOf(await verifier.verify(token, NOW + 1600))).toBe("TOKEN_UNKNOWN_KEY");
  });
});

describe("external subjects", () => {
  let verifier: ReturnType<typeof verifierFor>;
  beforeAll(() => {
    verifier = verifierFor();
  });
  /** A token whose claims, `sub` included, are exactly these on top of the issuer's usual ones. */
  const tokenWith = (claims: Record<string, unknown>) =>
    new SignJWT({ tenant_id: "acme", sub: "ext-user", ...claims })
      .setProtectedHeader({ alg: "ES256", kid: ec.kid })
      .setIssuer(IDP)
      .setAudience(AUDIENCE)
      .setExpirationTime(Math.floor(NOW / 1000) + 3600)
      .sign(ec.privateKey);

  it.each([
    ["empty", ""],
    ["a space", " "],
    ["whitespace only", " \t\u00a0\u2003"],
    ["padded", " alice"],
    ["trailing newline", "alice\n"],
    ["a NUL", "ali\u0000ce"],
    ["a C1 control", "ali\u0085ce"],
    ["an invisible format character only", "\u200b"],
    ["a bidi override", "alice\u202egnp.exe"],
    ["256 characters", "s".repeat(256)],
  ])("refuses a subject that is %s", async (_name, sub) => {
    await verifier.warm(NOW);
    const result = verifier.verify(await tokenWith({ sub }), NOW) as TokenResult;
    expect(result).toMatchObject({ ok: false, reason: "MALFORMED_CREDENTIAL", message: expect.stringMatching(/subject/) });
  });

  it.each([
    ["a UUID", "0f8c2a52-5b0e-4c55-a1b5-1d7f7c6c4c9e"],
    ["an e-mail address", "alice@example.com"],
    ["inner spaces and non-ASCII letters", "Zoë Müller"],
    ["255 characters", "s".repeat(255)],
  ])("accepts a subject that is %s", async (_name, sub) => {
    await verifier.warm(NOW);
    expect(verifier.verify(await tokenWith({ sub }), NOW)).toMatchObject({ ok: true, claims: { subject: sub } });
  });

  it.each([
    ["tenant claim", { tenant_id: " " }],
    ["tenant claim", { tenant_id: "Acme" }],
    ["tenant claim", { tenant_id: "acme\u0000" }],
    ["session id", { sid: "s\u0000" }],
    ["session id", { sid: " " }],
    ["token id", { jti: "x".repeat(256) }],
  ])("refuses an unusable %s: %j", async (_name, claims) => {
    await verifier.warm(NOW);
    expect(verifier.verify(await tokenWith(claims), NOW)).toMatchObject({ ok: false, reason: "MALFORMED_CREDENTIAL" });
  });
});
