/**
 * A real OpenID Provider for tests: panva's oidc-provider (a certified OP) on a loopback port,
 * with its development login and consent pages, PKCE required, and one confidential client.
 * Any login name signs in; the account "name" has email name@example.com, verified unless the
 * name starts with "unverified".
 */
import { createServer } from "node:net";
import { createServer as createHttpServer } from "node:http";
import { type CryptoKey, type JWK, exportJWK, generateKeyPair } from "jose";
import Provider from "oidc-provider";

/** A running provider. */
export interface TestOidcProvider {
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** The private signing key (tests that forge ID tokens re-sign with it). */
  readonly privateKey: CryptoKey;
  readonly kid: string;
  close(): Promise<void>;
}

/** A free loopback port (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/**
 * Runs `start` with a free loopback port, again with another one when the port was taken between
 * finding it and listening (other tests run on this machine at the same time).
 */
export async function onFreePort<T>(start: (port: number) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start(await freePort());
    } catch (error) {
      if (attempt >= 5 || !String((error as Error)?.message).includes("EADDRINUSE")) throw error;
    }
  }
}

/** Starts the provider with a client allowed to redirect to `redirectUris`. */
export async function startOidcProvider(redirectUris: readonly string[]): Promise<TestOidcProvider> {
  // Listen first, so that the issuer names a port this provider holds.
  const server = createHttpServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const issuer = `http://127.0.0.1:${port}`;
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const kid = "op-key-1";
  const jwk: JWK = { ...(await exportJWK(privateKey)), kid, alg: "RS256", use: "sig" };
  const clientId = "verdict-test";
  const clientSecret = `op-client-secret-${port}-abcdefghijklmnopqrstuvwxyz`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [...redirectUris],
        grant_types: ["authorization_code"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_post",
      },
    ],
    jwks: { keys: [jwk] },
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    claims: { openid: ["sub"], email: ["email", "email_verified"] },
    conformIdTokenClaims: false,
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, AuthorizationCode: 60, IdToken: 600 },
    cookies: { keys: [`cookie-key-${port}`] },
    async findAccount(_ctx: unknown, id: string) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: `${id}@example.com`, email_verified: !id.startsWith("unverified") };
        },
      };
    },
  });
  server.on("request", provider.callback());
  return {
    issuer,
    clientId,
    clientSecret,
    privateKey,
    kid,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
