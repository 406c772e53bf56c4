/**
 * The relying-party side of one identity provider, through openid-client: the authorization URL
 * (state, nonce, S256 PKCE challenge) and, at the callback, the code exchange with ID token
 * validation (issuer, audience, nonce, expiry, pinned algorithm, signature through the provider's
 * JWKS) for OIDC, or the user from GitHub's API.
 */
import * as client from "openid-client";
import type { OAuthProviderSettings } from "../../config/config.js";

/** Who signed in, as the provider tells it. */
export interface ExternalIdentity {
  /** Stable id at the provider (OIDC `sub`, GitHub's numeric user id). */
  readonly subject: string;
  readonly email: string;
  /** True only when the provider says the email is verified. */
  readonly emailVerified: boolean;
}

/** The values a started sign-in keeps server-side until its callback. */
export interface StartedAuthorization {
  readonly url: URL;
  readonly state: string;
  readonly nonce: string;
  readonly codeVerifier: string;
}

/** Why a callback failed: a stable code and a message that carries no secret. */
export class SignInError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
    /** For a 429, or a provider failure answered again without asking: the Retry-After in whole seconds. */
    readonly retryAfterSeconds = 0,
  ) {
    super(message);
    this.name = "SignInError";
  }
}

/** One configured provider. */
export interface ProviderClient {
  readonly settings: OAuthProviderSettings;
  /** The redirect URI registered at the provider: {publicUrl}/oauth2/{id}/callback. */
  readonly redirectUri: string;
  /** Builds the authorization URL with fresh state, nonce and PKCE verifier. */
  start(): Promise<StartedAuthorization>;
  /**
   * Exchanges the code in `callbackQuery` (the callback's query string) with the verifier and
   * checks everything the flow promises; throws SignInError.
   */
  finish(callbackQuery: URLSearchParams, pending: { readonly state: string; readonly nonce: string; readonly codeVerifier: string }): Promise<ExternalIdentity>;
}

/** What createProviderClient needs besides the provider's settings. */
export interface ProviderClientOptions {
  readonly publicUrl: string;
  /** The fetch used for every request to the provider (tests may wrap it); default globalThis.fetch. */
  readonly fetch?: typeof globalThis.fetch;
  /** How long one request to the provider may take (default 10 s). */
  readonly timeoutSeconds?: number;
  /** After a failed OIDC discovery, how long sign-ins are refused with that failure before it is tried again (default 10 s). */
  readonly discoveryRetryMs?: number;
  readonly now?: () => number;
}

/** A failed discovery is tried again at the first sign-in this long after it, not at every one. */
const DISCOVERY_RETRY_MS = 10_000;

const LOOPBACK = new Set(["127.0.0.1", "[::1]", "localhost"]);

/** Turns an openid-client failure into a SignInError; its messages are fixed texts naming no value. */
function refusal(error: unknown, kind: OAuthProviderSettings["kind"]): SignInError {
  if (error instanceof SignInError) return error;
  if (error instanceof client.AuthorizationResponseError) {
    return new SignInError("provider_error", `the provider answered the authorization with error ${JSON.stringify(error.error)}`);
  }
  if (error instanceof client.ResponseBodyError) {
    return new SignInError(
      "code_exchange_refused",
      `the provider refused the code exchange (${error.error}): the code is invalid, expired or already used, or the PKCE verifier does not match`,
    );
  }
  const code = (error as { code?: unknown })?.code;
  if (typeof code === "string" && code.startsWith("OAUTH_")) {
    // openid-client wraps oauth4webapi's error, whose fixed message names the claim (never a value).
    const inner = (error as { cause?: unknown }).cause as { code?: unknown; message?: unknown } | undefined;
    const message = inner?.code === code && typeof inner.message === "string" ? inner.message : (error as Error).message;
    if (kind === "oidc" && (code === "OAUTH_JWT_CLAIM_COMPARISON_FAILED" || code === "OAUTH_JWT_TIMESTAMP_CHECK_FAILED" || code === "OAUTH_INVALID_RESPONSE" || code === "OAUTH_KEY_SELECTION_FAILED" || code === "OAUTH_JWS_SIGNATURE_VERIFICATION_FAILED")) {
      return new SignInError("id_token_invalid", `the provider's answer was refused: ${message}`);
    }
    return new SignInError("provider_unusable", `the provider's answer was refused: ${message}`, 502);
  }
  const name = (error as Error)?.name;
  if (name === "JWSSignatureVerificationFailed" || name === "JWKSNoMatchingKey") {
    return new SignInError("id_token_invalid", "the provider's answer was refused: the ID token signature does not verify with the provider's keys");
  }
  return new SignInError("provider_unreachable", "the provider could not be reached or answered something unusable", 502);
}

/** True for a JSON object with an "error" member. */
function hasErrorMember(body: string): boolean {
  try {
    const parsed = JSON.parse(body) as unknown;
    return typeof parsed === "object" && parsed !== null && "error" in parsed;
  } catch {
    return false;
  }
}

/** The fetch of every request to the provider, discovery included. */
function providerFetch(settings: OAuthProviderSettings, options: ProviderClientOptions): client.CustomFetch {
  const f = options.fetch ?? globalThis.fetch;
  return async (input, init) => {
    const response = await f(input, init as RequestInit);
    if (settings.kind !== "github" || input !== settings.tokenUrl || response.status !== 200) return response;
    // GitHub answers a refused code exchange with HTTP 200 and an "error" member: make it the
    // OAuth error response it is, so that it is reported as the provider's refusal.
    const body = await response.text();
    return new Response(body, { status: hasErrorMember(body) ? 400 : 200, headers: response.headers });
  };
}

function execute(settings: OAuthProviderSettings, url: string, fetchFn: client.CustomFetch): Array<(config: client.Configuration) => void> {
  const steps: Array<(config: client.Configuration) => void> = [];
  const u = new URL(url);
  if (u.protocol === "http:" && LOOPBACK.has(u.hostname)) steps.push(client.allowInsecureRequests);
  steps.push((config) => (config[client.customFetch] = fetchFn));
  if (settings.kind === "oidc") steps.push(client.enableNonRepudiationChecks);
  return steps;
}

/**
 * Creates the client of one provider. OIDC discovery happens at first use, once however many
 * sign-ins wait for it; after a failure, sign-ins are refused with it (and a Retry-After) for
 * discoveryRetryMs, so that a flood of /authorize makes at most one request to a failing provider
 * per interval.
 */
export function createProviderClient(settings: OAuthProviderSettings, options: ProviderClientOptions): ProviderClient {
  const redirectUri = `${options.publicUrl.replace(/\/$/, "")}/oauth2/${settings.id}/callback`;
  const timeout = options.timeoutSeconds ?? 10;
  const auth = client.ClientSecretPost(settings.clientSecret.reveal());
  const fetchFn = providerFetch(settings, options);
  let configuration: Promise<client.Configuration> | undefined;
  const retryMs = options.discoveryRetryMs ?? DISCOVERY_RETRY_MS;
  const now = options.now ?? Date.now;
  let failure: { readonly atMs: number; readonly error: SignInError } | undefined;

  function configure(): Promise<client.Configuration> {
    if (settings.kind === "github") {
      const config = new client.Configuration(
        { issuer: new URL(settings.authorizationUrl).origin, authorization_endpoint: settings.authorizationUrl, token_endpoint: settings.tokenUrl },
        settings.clientId,
        undefined,
        auth,
      );
      config.timeout = timeout;
      for (const step of execute(settings, settings.tokenUrl, fetchFn)) step(config);
      return Promise.resolve(config);
    }
    return client.discovery(new URL(settings.issuer), settings.clientId, { id_token_signed_response_alg: settings.idTokenAlgorithm }, auth, {
      execute: execute(settings, settings.issuer, fetchFn),
      [client.customFetch]: fetchFn,
      timeout,
    });
  }

  /** The provider's configuration; throws SignInError. */
  function config(): Promise<client.Configuration> {
    if (configuration === undefined && failure !== undefined) {
      const leftMs = failure.atMs + retryMs - now();
      if (leftMs > 0) {
        const { code, message, status } = failure.error;
        return Promise.reject(new SignInError(code, message, status, Math.ceil(leftMs / 1000)));
      }
    }
    configuration ??= configure().then(
      (c) => {
        failure = undefined;
        return c;
      },
      (error: unknown) => {
        configuration = undefined;
        failure = { atMs: now(), error: refusal(error, settings.kind) };
        throw failure.error;
      },
    );
    return configuration;
  }

  async function githubUser(config: client.Configuration, accessToken: string): Promise<ExternalIdentity> {
    const get = async (path: string): Promise<unknown> => {
      const headers = new Headers({ accept: "application/vnd.github+json", "x-github-api-version": "2022-11-28" });
      const response = await client.fetchProtectedResource(config, accessToken, new URL(`${settings.apiUrl}${path}`), "GET", undefined, headers);
      if (!response.ok) throw new SignInError("provider_unusable", `GitHub answered ${path} with HTTP ${response.status}`, 502);
      return response.json();
    };
    const user = (await get("/user")) as { id?: unknown };
    if (typeof user.id !== "number" && typeof user.id !== "string") throw new SignInError("provider_unusable", "GitHub's /user has no id", 502);
    // Only /user/emails says whether an address is verified; /user's public email does not.
    const emails = settings.scopes.includes("user:email") ? ((await get("/user/emails")) as Array<{ email?: unknown; primary?: unknown; verified?: unknown }>) : [];
    const primary = Array.isArray(emails) ? emails.find((e) => e.primary === true && typeof e.email === "string") : undefined;
    return { subject: String(user.id), email: typeof primary?.email === "string" ? primary.email : "", emailVerified: primary?.verified === true };
  }

  return {
    settings,
    redirectUri,
    async start() {
      const codeVerifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const parameters: Record<string, string> = {
        redirect_uri: redirectUri,
        scope: settings.scopes.join(" "),
        code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: "S256",
        state,
      };
      if (settings.kind === "oidc") parameters.nonce = nonce;
      let c: client.Configuration;
      try {
        c = await config();
      } catch (error) {
        throw refusal(error, settings.kind);
      }
      return { url: client.buildAuthorizationUrl(c, parameters), state, nonce, codeVerifier };
    },
    async finish(callbackQuery, pending) {
      try {
        const c = await config();
        const current = new URL(redirectUri);
        current.search = callbackQuery.toString();
        const tokens = await client.authorizationCodeGrant(c, current, {
          pkceCodeVerifier: pending.codeVerifier,
          expectedState: pending.state,
          ...(settings.kind === "oidc" ? { expectedNonce: pending.nonce, idTokenExpected: true } : {}),
        });
        if (settings.kind === "github") return await githubUser(c, tokens.access_token);
        const claims = tokens.claims();
        if (!claims) throw new SignInError("id_token_invalid", "the provider returned no ID token");
        const email = typeof claims.email === "string" ? claims.email : "";
        return { subject: claims.sub, email, emailVerified: email !== "" && claims.email_verified === true };
      } catch (error) {
        throw refusal(error, settings.kind);
      }
    },
  };
}
