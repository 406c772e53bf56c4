/**
 * Which Verdict the CLI talks to and with which credential: --url, else VERDICT_URL, else the
 * stored session's URL, else http://localhost:8080; VERDICT_API_KEY, else VERDICT_TOKEN, else the
 * stored session (only for the URL it was made for, refreshed shortly before it expires).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { type VerdictClient, type VerdictCredentials, createVerdictClient } from "../client/index.js";
import { type StoredSession, readSession, writeSession } from "./credentials-file.js";
import { CliError, EXIT } from "./exit-codes.js";

/** Where Verdict listens for humans by default (the HTTP port, Connect protocol). */
export const DEFAULT_URL = "http://localhost:8080";

const REFRESH_MARGIN_MS = 30_000;

/** The URL the CLI uses. */
export function resolveUrl(env: NodeJS.ProcessEnv, flag: string | undefined): string {
  const url = flag || env.VERDICT_URL || readSession(env)?.url || DEFAULT_URL;
  return url.replace(/\/+$/, "");
}

/** Options shared by every command that talks to Verdict. */
export interface ConnectOptions {
  readonly url: string;
  readonly env: NodeJS.ProcessEnv;
  readonly timeoutMs: number;
}

/** A client without a caller credential (login, refresh, health, check without caller identity). */
export function anonymousClient(options: ConnectOptions): VerdictClient {
  return createVerdictClient({ url: options.url, timeoutMs: options.timeoutMs });
}

async function refreshed(options: ConnectOptions, session: StoredSession): Promise<StoredSession> {
  if (session.accessExpiresAtMs - Date.now() > REFRESH_MARGIN_MS) return session;
  const client = anonymousClient(options);
  try {
    const { tokens } = await client.auth.refresh({ refreshToken: session.refreshToken });
    if (!tokens) throw new ConnectError("Refresh answered without tokens", Code.Internal);
    const next: StoredSession = {
      ...session,
      accessToken: tokens.accessToken,
      refreshToken: tokens.refreshToken,
      accessExpiresAtMs: Date.now() + Number(tokens.expiresIn) * 1000,
    };
    writeSession(options.env, next);
    return next;
  } catch (error) {
    if (error instanceof ConnectError && (error.code === Code.Unauthenticated || error.code === Code.NotFound || error.code === Code.PermissionDenied)) {
      throw new CliError(`the session of ${session.username} has ended: run 'verdict login' again`, EXIT.auth);
    }
    throw error;
  } finally {
    client.close();
  }
}

/** The caller credential from the environment or the stored session; undefined when there is none. */
export async function resolveCredentials(options: ConnectOptions): Promise<VerdictCredentials | undefined> {
  const { env } = options;
  if (env.VERDICT_API_KEY) return { apiKey: env.VERDICT_API_KEY };
  if (env.VERDICT_TOKEN) return { token: env.VERDICT_TOKEN };
  const session = readSession(env);
  if (!session || session.url.replace(/\/+$/, "") !== options.url) return undefined;
  return { token: (await refreshed(options, session)).accessToken };
}

/** A client carrying the caller's credential; fails (auth) when there is none. */
export async function authenticatedClient(options: ConnectOptions): Promise<VerdictClient> {
  const credentials = await resolveCredentials(options);
  if (!credentials) {
    throw new CliError(`not logged in to ${options.url}: run 'verdict login', or set VERDICT_TOKEN or VERDICT_API_KEY`, EXIT.auth);
  }
  return createVerdictClient({ url: options.url, credentials, timeoutMs: options.timeoutMs });
}
