/**
 * External issuers' tokens against a real server over gRPC, with the issuer's JWKS served by a
 * local HTTP server whose keys the tests change: a cached token never outlives its key, and an
 * unusable subject is refused before it provisions anyone.
 */
import { type JWK, SignJWT, exportJWK, generateKeyPair } from "jose";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { DecisionService } from "../../gen/verdict/v1/decision_pb.js";
import { Reason } from "../../gen/verdict/v1/types_pb.js";
import { type TestClient, grpcClient } from "../helpers/grpc.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const IDP = "https://idp.external.test";
const ROOT = { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString("base64")}` };

type Key = { kid: string; privateKey: Awaited<ReturnType<typeof generateKeyPair>>["privateKey"]; jwk: JWK };

async function newKey(kid: string): Promise<Key> {
  const pair = await generateKeyPair("RS256", { extractable: true });
  return { kid, privateKey: pair.privateKey, jwk: { ...(await exportJWK(pair.publicKey)), kid, alg: "RS256", use: "sig" } };
}

describe("external tokens: keys removed at the issuer, unusable subjects", () => {
  const schema = freshSchema();
  let v: Awaited<ReturnType<typeof startTestVerdict>>;
  let replica: Awaited<ReturnType<typeof startTestVerdict>>;
  let jwksServer: Server;
  let admin: TestClient<typeof AdminService>;
  const decisions: Array<TestClient<typeof DecisionService>> = [];
  const published: Key[] = [];
  let fetches = 0;

  const token = (key: Key, claims: Record<string, unknown>) => {
    const nowS = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss: IDP, aud: "verdict-api", iat: nowS, exp: nowS + 600, ...claims }).setProtectedHeader({ alg: "RS256", kid: key.kid }).sign(key.privateKey);
  };
  const check = (client: TestClient<typeof DecisionService>, credential: string) => client.check({ credential, action: "read:orders", tenant: "acme" });

  beforeAll(async () => {
    jwksServer = createServer((_req, res) => {
      fetches += 1;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys: published.map((k) => k.jwk) }));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, "127.0.0.1", resolve));
    const jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks`;
    published.push(await newKey("k1"));
    const env = {
      DATABASE_URL: TEST_DATABASE_URL,
      VERDICT_POLL_INTERVAL_MS: "50",
      VERDICT_OIDC_ISSUERS: JSON.stringify([
        { issuer: IDP, audience: "verdict-api", jwksUrl, algorithms: ["RS256"], cacheTtlSeconds: 1, cooldownSeconds: 1, createUsers: true, defaultTenant: "acme", defaultRole: "READ" },
      ]),
    };
    v = await startTestVerdict(env, schema);
    replica = await startTestVerdict(env, schema);
    admin = grpcClient(AdminService, v.grpcAddress);
    decisions.push(grpcClient(DecisionService, v.grpcAddress), grpcClient(DecisionService, replica.grpcAddress));
    await admin.createTenant({ id: "acme" }, ROOT);
  });

  afterAll(async () => {
    for (const c of [admin, ...decisions]) c?.close();
    await replica?.close();
    await v?.close();
    await new Promise((resolve) => jwksServer?.close(resolve));
    await dropSchema(schema);
  });

  it("refuses a cached token on every replica once a refresh no longer finds its key", async () => {
    const [k1] = published;
    const old = await token(k1, { sub: "ext-carol" });
    for (const client of decisions) {
      await vi.waitFor(async () => expect((await check(client, old)).allowed).toBe(true), { timeout: 15_000, interval: 50 });
      expect((await check(client, old)).allowed).toBe(true);
    }
    // The issuer rotates: k2 in, k1 out. A token signed with k2 makes each replica refetch.
    const k2 = await newKey("k2");
    published.splice(0, published.length, k2);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const next = await token(k2, { sub: "ext-carol" });
    for (const client of decisions) {
      expect((await check(client, next)).allowed).toBe(true);
      expect((await check(client, old)).reason).toBe(Reason.TOKEN_UNKNOWN_KEY);
    }
  });

  it("refuses a cached token once its key set goes stale and the refresh finds the key gone", async () => {
    const [current] = published;
    const cached = await token(current, { sub: "ext-dave" });
    const client = decisions[0];
    expect((await check(client, cached)).allowed).toBe(true);
    expect((await check(client, cached)).allowed).toBe(true);
    const before = fetches;
    published.splice(0, published.length, await newKey("k3"));
    // Only this one token is presented: the refresh must come from the cached token's own use.
    await vi.waitFor(async () => expect((await check(client, cached)).reason).toBe(Reason.TOKEN_UNKNOWN_KEY), { timeout: 10_000, interval: 100 });
    expect(fetches).toBeGreaterThan(before);
  });

  it("refuses blank, padded, control-character and over-long subjects without provisioning a user", async () => {
    const [key] = published;
    const client = decisions[0];
    for (const sub of [" ", "   ", "\t", " eve", "eve ", "ev\u0000e", "ev\ne", "\u200b", "e".repeat(256)]) {
      const d = await check(client, await token(key, { sub }));
      expect(d.allowed).toBe(false);
      expect(d.reason).toBe(Reason.MALFORMED_CREDENTIAL);
      expect(d.message).toMatch(/subject/);
    }
    const fine = await check(client, await token(key, { sub: "eve" }));
    expect(fine.allowed).toBe(true);
    const external = (await admin.listUsers({}, ROOT)).users.filter((u) => u.externalIssuer === IDP).map((u) => u.externalSubject);
    expect(external.sort()).toEqual(["eve", "ext-carol", "ext-dave"]);
  });
});
