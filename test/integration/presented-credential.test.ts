/**
 * The RPC services over Connect and the sign-in routes find a request's credential the same way
 * (src/api/presented-credential.ts): a Bearer token, else the API key header, else the session
 * cookie. Another scheme in the authorization header (Basic, say, from a proxy in front) leaves the
 * cookie to speak; a malformed Bearer header presents nothing. Real server, machine's Postgres.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { AuthService } from "../../gen/verdict/v1/auth_pb.js";
import { DecisionService } from "../../gen/verdict/v1/decision_pb.js";
import { Reason } from "../../gen/verdict/v1/types_pb.js";
import { type TestClient, grpcClient } from "../helpers/grpc.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const ROOT = { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString("base64")}` };
const PROXY_BASIC = `Basic ${Buffer.from("staging:proxy-password").toString("base64")}`;

type Verdict = Awaited<ReturnType<typeof startTestVerdict>>;

describe("one credential lookup for the RPC services and the sign-in routes", () => {
  const schema = freshSchema();
  let v: Verdict;
  let admin: TestClient<typeof AdminService>;
  let auth: TestClient<typeof AuthService>;
  let decision: TestClient<typeof DecisionService>;

  const session = async () => (await auth.login({ username: "alice", password: "alice-password-1", tenant: "" })).tokens!.accessToken;
  const reason = async (token: string) => (await decision.check({ credential: token, action: "read:orders", tenant: "acme" })).reason;
  const post = (path: string, headers: Record<string, string>, body?: unknown) =>
    fetch(`${v.httpBase}${path}`, { method: "POST", headers: body === undefined ? headers : { "content-type": "application/json", ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });

  beforeAll(async () => {
    v = await startTestVerdict({ DATABASE_URL: TEST_DATABASE_URL }, schema);
    admin = grpcClient(AdminService, v.grpcAddress);
    auth = grpcClient(AuthService, v.grpcAddress);
    decision = grpcClient(DecisionService, v.grpcAddress);
    await admin.createTenant({ id: "acme" }, ROOT);
    await admin.createUser({ username: "alice", password: "alice-password-1" }, ROOT);
    await admin.bindRole({ tenant: "acme", user: "alice", role: "READ" }, ROOT);
  });
  afterAll(async () => {
    for (const c of [admin, auth, decision]) c?.close();
    await v?.close();
    await dropSchema(schema);
  });

  it("AuthService.Logout over Connect takes the session cookie beside another authorization scheme", async () => {
    const token = await session();
    const res = await post("/verdict.v1.AuthService/Logout", { cookie: `verdict_session=${token}`, authorization: PROXY_BASIC }, {});
    expect(res.status).toBe(200);
    expect(await reason(token)).toBe(Reason.REVOKED);
  });

  it("POST /oauth2/logout takes the session cookie beside another authorization scheme", async () => {
    const token = await session();
    const res = await post("/oauth2/logout", { cookie: `verdict_session=${token}`, authorization: PROXY_BASIC });
    expect(res.status).toBe(204);
    expect(await reason(token)).toBe(Reason.REVOKED);
  });

  it("a malformed Bearer header presents nothing: the cookie does not stand in for it, on either", async () => {
    const token = await session();
    const rpc = await post("/verdict.v1.AuthService/Logout", { cookie: `verdict_session=${token}`, authorization: "Bearer two words" }, {});
    expect(rpc.status).toBe(401);
    const route = await post("/oauth2/logout", { cookie: `verdict_session=${token}`, authorization: "Bearer two words" });
    expect(route.status).toBe(204);
    expect(route.headers.get("set-cookie")).toContain("verdict_session=;");
    expect(await reason(token)).toBe(Reason.ALLOWED);
  });
});
