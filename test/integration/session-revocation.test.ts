/**
 * A password change (by the user or by an admin), a password reset and disabling a user revoke
 * every session of that user (refresh tokens and the access tokens issued with them) on every
 * replica: two replicas on the machine's Postgres and Redis, polling rarely, so the second learns
 * through the change log announced on the bus.
 */
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { AuthService, type TokenPair } from "../../gen/verdict/v1/auth_pb.js";
import { DecisionService } from "../../gen/verdict/v1/decision_pb.js";
import { Reason } from "../../gen/verdict/v1/types_pb.js";
import { type TestClient, grpcClient, grpcError } from "../helpers/grpc.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, TEST_REDIS_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const basic = (user: string, pass: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}` });
const ROOT = basic("root", ROOT_PASSWORD);
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

type Verdict = Awaited<ReturnType<typeof startTestVerdict>>;

/** Polls `fn` every 5 ms until it returns true, for at most `timeoutMs`. */
async function eventually(what: string, fn: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const started = performance.now();
  while (!(await fn())) {
    if (performance.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("password changes and disabling revoke every session, on every replica", () => {
  const schema = freshSchema();
  let a: Verdict;
  let b: Verdict;
  let admin: TestClient<typeof AdminService>;
  let auth: TestClient<typeof AuthService>;
  let checkA: TestClient<typeof DecisionService>;
  let checkB: TestClient<typeof DecisionService>;
  let n = 0;

  const check = (client: TestClient<typeof DecisionService>, credential: string) => client.check({ credential, action: "read:orders", tenant: "acme" });
  const login = async (username: string, password: string): Promise<TokenPair> => (await auth.login({ username, password, tenant: "" })).tokens!;
  /** A fresh user with a password, READ in acme, and two sessions on replica A (one refreshed once). */
  async function userWithSessions(): Promise<{ name: string; password: string; sessions: TokenPair[] }> {
    const name = `user-${++n}`;
    const password = `${name}-password-1`;
    await admin.createUser({ username: name, password }, ROOT);
    await admin.bindRole({ tenant: "acme", user: name, role: "READ" }, ROOT);
    const first = await login(name, password);
    const refreshed = (await auth.refresh({ refreshToken: first.refreshToken })).tokens!;
    const second = await login(name, password);
    for (const s of [first, refreshed, second]) {
      expect((await check(checkA, s.accessToken)).allowed).toBe(true);
      await eventually("replica B knows the session", async () => (await check(checkB, s.accessToken)).allowed);
    }
    return { name, password, sessions: [first, refreshed, second] };
  }
  /** Every access token is REVOKED on both replicas (B without min_version: through the bus) and no refresh token works. */
  async function expectRevoked(sessions: readonly TokenPair[], reason = Reason.REVOKED): Promise<void> {
    for (const s of sessions) {
      expect(Reason[(await check(checkA, s.accessToken)).reason]).toBe(Reason[reason]);
      await eventually("replica B revokes the session", async () => (await check(checkB, s.accessToken)).reason === reason);
    }
    for (const s of sessions) expect((await grpcError(auth.refresh({ refreshToken: s.refreshToken }))).code).toBe(status.UNAUTHENTICATED);
  }

  beforeAll(async () => {
    const env = {
      DATABASE_URL: TEST_DATABASE_URL,
      REDIS_URL: TEST_REDIS_URL,
      VERDICT_REDIS_CHANNEL: `verdict:it:${schema}`,
      // Rare polling: what B learns within a test it learns from the bus.
      VERDICT_POLL_INTERVAL_MS: "600000",
    };
    a = await startTestVerdict(env, schema);
    b = await startTestVerdict(env, schema);
    admin = grpcClient(AdminService, a.grpcAddress);
    auth = grpcClient(AuthService, a.grpcAddress);
    checkA = grpcClient(DecisionService, a.grpcAddress);
    checkB = grpcClient(DecisionService, b.grpcAddress);
    await admin.createTenant({ id: "acme" }, ROOT);
  });
  afterAll(async () => {
    for (const c of [admin, auth, checkA, checkB]) c?.close();
    await b?.close();
    await a?.close();
    await dropSchema(schema);
  });

  it("a user changing their own password revokes every session of theirs", async () => {
    const u = await userWithSessions();
    await admin.changePassword({ newPassword: `${u.name}-password-2` }, basic(u.name, u.password));
    await expectRevoked(u.sessions);
    const fresh = await login(u.name, `${u.name}-password-2`);
    expect((await check(checkB, fresh.accessToken)).allowed).toBe(true);
  });

  it("keeps the caller's current session when asked, and only that one", async () => {
    const u = await userWithSessions();
    const [first, refreshed, second] = u.sessions;
    await admin.changePassword({ newPassword: `${u.name}-password-2`, currentPassword: u.password, keepCurrentSession: true }, bearer(second.accessToken));
    await expectRevoked([first, refreshed]);
    expect((await check(checkA, second.accessToken)).allowed).toBe(true);
    expect((await check(checkB, second.accessToken)).allowed).toBe(true);
    expect((await auth.refresh({ refreshToken: second.refreshToken })).tokens?.sessionId).toBe(second.sessionId);
    const noSession = await grpcError(admin.changePassword({ newPassword: `${u.name}-password-3`, keepCurrentSession: true }, basic(u.name, `${u.name}-password-2`)));
    expect(noSession.code).toBe(status.INVALID_ARGUMENT);
  });

  it("an admin resetting a user's password revokes every session of that user, and no one else's", async () => {
    const u = await userWithSessions();
    const bystander = await userWithSessions();
    await admin.changePassword({ user: u.name, newPassword: `${u.name}-reset-1` }, ROOT);
    await expectRevoked(u.sessions);
    for (const s of bystander.sessions.slice(1)) expect((await check(checkB, s.accessToken)).allowed).toBe(true);
  });

  it("disabling a user revokes every session: re-enabling does not bring them back", async () => {
    const u = await userWithSessions();
    await admin.setUserDisabled({ user: u.name, disabled: true }, ROOT);
    await expectRevoked(u.sessions, Reason.REVOKED);
    await admin.setUserDisabled({ user: u.name, disabled: false }, ROOT);
    for (const s of u.sessions) {
      expect((await check(checkA, s.accessToken)).reason).toBe(Reason.REVOKED);
      expect((await check(checkB, s.accessToken)).reason).toBe(Reason.REVOKED);
    }
    expect((await check(checkB, (await login(u.name, u.password)).accessToken)).allowed).toBe(true);
  });
});
