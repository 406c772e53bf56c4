/**
 * Token verification cost, measured side by side in one run: Verdict's synchronous verifier
 * (node:crypto, claims cache off), its claims-cache hit, and jose's jwtVerify on the same tokens.
 * Prints microseconds per verification and ratios; quote the ratios, the machines are noisy.
 */
import { generateKeyPairSync } from "node:crypto";
import { createLocalJWKSet, jwtVerify, SignJWT, type JWTVerifyGetKey } from "jose";
import { createTokenVerifier, signAccessToken, type TokenResult, type TokenVerifier } from "../src/authn/tokens/jwt.js";
import { createHmacKeyRing, createSigningKeyRing, type KeyRing } from "../src/authn/tokens/signing-keys.js";

const ISSUER = "https://verdict.example";
const IDP = "https://idp.example";
const AUDIENCE = "verdict";
const ROUNDS = 5;
const ITERATIONS = 2000;

interface Case {
  readonly name: string;
  readonly token: string;
  readonly ours: TokenVerifier;
  readonly cached: TokenVerifier;
  readonly jose: () => Promise<unknown>;
}

function measureSync(fn: () => void): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i += 1) fn();
  return Number(process.hrtime.bigint() - start) / 1000 / ITERATIONS;
}

async function measureAsync(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i += 1) await fn();
  return Number(process.hrtime.bigint() - start) / 1000 / ITERATIONS;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function mustBeOk(result: TokenResult | Promise<TokenResult>): void {
  if (result instanceof Promise || !result.ok) throw new Error("bench token did not verify synchronously");
}

function ownCase(name: string, ring: KeyRing, joseKey: Parameters<typeof jwtVerify>[1] | JWTVerifyGetKey): Case {
  const now = Date.now();
  const { token } = signAccessToken(ring, { issuer: ISSUER, audience: AUDIENCE, subject: "u1", tenant: "acme", sessionId: "s1", ttlMs: 3_600_000 }, now);
  const own = { issuer: ISSUER, audience: AUDIENCE, ring };
  return {
    name,
    token,
    ours: createTokenVerifier({ own, cacheSize: 0 }),
    cached: createTokenVerifier({ own }),
    jose: () => jwtVerify(token, joseKey as Parameters<typeof jwtVerify>[1], { issuer: ISSUER, audience: AUDIENCE, algorithms: [ring.alg] }),
  };
}

async function rsaCase(): Promise<Case> {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwks = { keys: [{ ...publicKey.export({ format: "jwk" }), kid: "rsa-1", alg: "RS256", use: "sig" }] };
  const fetch = async (): Promise<Response> => new Response(JSON.stringify(jwks), { status: 200 });
  const external = [{ issuer: IDP, audience: AUDIENCE, jwksUrl: "https://idp.example/jwks", algorithms: ["RS256" as const] }];
  const token = await new SignJWT({ tenant_id: "acme" })
    .setProtectedHeader({ alg: "RS256", kid: "rsa-1" })
    .setIssuer(IDP)
    .setAudience(AUDIENCE)
    .setSubject("u1")
    .setIssuedAt()
    .setExpirationTime("1h")
    .sign(privateKey);
  const ours = createTokenVerifier({ external, cacheSize: 0, fetch });
  const cached = createTokenVerifier({ external, fetch });
  await ours.warm(Date.now());
  await cached.warm(Date.now());
  const joseJwks = createLocalJWKSet(jwks as never);
  return { name: "RS256 (external)", token, ours, cached, jose: () => jwtVerify(token, joseJwks, { issuer: IDP, audience: AUDIENCE, algorithms: ["RS256"] }) };
}

async function main(): Promise<void> {
  const now = Date.now();
  const ed = createSigningKeyRing({ alg: "EdDSA", retireAfterMs: 3_600_000, nowMs: now });
  const es = createSigningKeyRing({ alg: "ES256", retireAfterMs: 3_600_000, nowMs: now });
  const secret = Buffer.from("a-bench-secret-of-at-least-thirty-two-bytes");
  const hs = createHmacKeyRing({ secret, retireAfterMs: 3_600_000, nowMs: now });
  const cases = [
    ownCase("HS256 (own)", hs, new Uint8Array(secret)),
    ownCase("ES256 (own)", es, createLocalJWKSet(es.publicJwks(now) as never)),
    ownCase("EdDSA (own)", ed, createLocalJWKSet(ed.publicJwks(now) as never)),
    await rsaCase(),
  ];

  console.log(`node ${process.version}, ${ITERATIONS} verifications x ${ROUNDS} rounds per case, median round`);
  console.log("cache hit: same string object; fresh hit: the token copied out of a Buffer each time, as it arrives off the wire");
  console.log("case               verdict sync   cache hit   fresh hit   jose jwtVerify   jose / verdict   verdict / fresh hit");
  for (const c of cases) {
    const ours: number[] = [];
    const hit: number[] = [];
    const fresh: number[] = [];
    const jose: number[] = [];
    const wire = Buffer.from(c.token, "latin1");
    mustBeOk(c.ours.verify(c.token, Date.now()));
    mustBeOk(c.cached.verify(c.token, Date.now()));
    await c.jose();
    for (let round = 0; round < ROUNDS; round += 1) {
      const t = Date.now();
      ours.push(measureSync(() => c.ours.verify(c.token, t)));
      hit.push(measureSync(() => c.cached.verify(c.token, t)));
      fresh.push(measureSync(() => c.cached.verify(wire.toString("latin1"), t)));
      jose.push(await measureAsync(c.jose));
    }
    const [o, h, f, j] = [median(ours), median(hit), median(fresh), median(jose)];
    console.log(
      `${c.name.padEnd(18)} ${o.toFixed(2).padStart(9)} µs ${h.toFixed(2).padStart(8)} µs ${f.toFixed(2).padStart(8)} µs ${j.toFixed(2).padStart(12)} µs ${(j / o).toFixed(2).padStart(12)}x ${(o / f).toFixed(0).padStart(17)}x`,
    );
  }
}

await main();
