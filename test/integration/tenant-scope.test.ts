/**
 * A credential limited to one tenant (an access token of a session opened in a tenant, or an API
 * key scoped to one) sees and acts in that tenant only, whatever its user may do elsewhere: every
 * AdminService method (and AuthService.RotateSigningKey) called with such a credential against
 * another tenant's objects, or objects valid in every tenant, is PERMISSION_DENIED and commits
 * nothing. Real server over gRPC on the machine's Postgres.
 */
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { AuthService } from "../../gen/verdict/v1/auth_pb.js";
import { DecisionService } from "../../gen/verdict/v1/decision_pb.js";
import { type TestClient, grpcClient, grpcError } from "../helpers/grpc.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const basic = (user: string, pass: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}` });
const ROOT = basic("root", ROOT_PASSWORD);
const ALICE_PASSWORD = "alice-password-1";
const ALICE = basic("alice", ALICE_PASSWORD);
const LIMIT = { perMinute: 100, perHour: 1000, burst: 10, shadow: false };

type Verdict = Awaited<ReturnType<typeof startTestVerdict>>;
type Headers = Record<string, string>;

describe("a tenant-scoped credential sees and acts in its own tenant only", () => {
  const schema = freshSchema();
  let v: Verdict;
  let admin: TestClient<typeof AdminService>;
  let auth: TestClient<typeof AuthService>;
  let decision: TestClient<typeof DecisionService>;
  /** An unscoped root key: reads the committed version without a password check per call. */
  let rootKey: Headers;
  /** alice's keys: scoped to acme (a caller), to acme (a target), to initech, and unscoped. */
  const keys = { caller: "", acme: "", initech: "", everywhere: "" };
  const secrets = { acme: "", initech: "", everywhere: "" };
  const callers: Record<string, Headers> = {};

  const committed = async () => (await admin.getPolicyVersion({}, rootKey)).committedVersion;

  beforeAll(async () => {
    v = await startTestVerdict({ DATABASE_URL: TEST_DATABASE_URL }, schema);
    admin = grpcClient(AdminService, v.grpcAddress);
    auth = grpcClient(AuthService, v.grpcAddress);
    decision = grpcClient(DecisionService, v.grpcAddress);
    rootKey = { "x-api-key": (await admin.createApiKey({ name: "root" }, ROOT)).secret };
    for (const id of ["acme", "initech"]) await admin.createTenant({ id }, ROOT);
    await admin.createUser({ username: "alice", password: ALICE_PASSWORD }, ROOT);
    await admin.createUser({ username: "bob", password: "bob-password-12" }, ROOT);
    // alice is ADMIN in every tenant: unscoped, she could do every call below.
    await admin.bindRole({ tenant: "*", user: "alice", role: "ADMIN" }, ROOT);
    await admin.bindRole({ tenant: "initech", user: "bob", role: "READ" }, ROOT);
    const callerKey = await admin.createApiKey({ name: "acme-caller", tenant: "acme" }, ALICE);
    keys.caller = callerKey.apiKey!.id;
    for (const [name, tenant] of [["acme", "acme"], ["initech", "initech"], ["everywhere", ""]] as const) {
      const created = await admin.createApiKey({ name, tenant }, ALICE);
      keys[name] = created.apiKey!.id;
      secrets[name] = created.secret;
    }
    await admin.setRateLimit({ target: { target: { case: "tenant", value: "initech" } }, limit: LIMIT }, ROOT);
    await admin.setRateLimit({ target: { target: { case: "keyId", value: keys.initech } }, limit: LIMIT }, ROOT);
    const session = (await auth.login({ username: "alice", password: ALICE_PASSWORD, tenant: "acme" })).tokens!;
    callers["access token of a session in acme"] = { authorization: `Bearer ${session.accessToken}` };
    callers["API key scoped to acme"] = { "x-api-key": callerKey.secret };
  });
  afterAll(async () => {
    for (const c of [admin, auth, decision]) c?.close();
    await v?.close();
    await dropSchema(schema);
  });

  const tenantTarget = (value: string) => ({ target: { case: "tenant" as const, value } });
  const keyTarget = (value: string) => ({ target: { case: "keyId" as const, value } });

  /** Calls reaching outside acme, by method: each must be PERMISSION_DENIED and commit nothing. */
  const outside: Record<string, Array<[string, (h: Headers) => Promise<unknown>]>> = {
    createTenant: [["a new tenant", (h) => admin.createTenant({ id: "umbrella" }, h)]],
    listTenants: [["every tenant", (h) => admin.listTenants({}, h)]],
    setTenantDisabled: [["initech", (h) => admin.setTenantDisabled({ id: "initech", disabled: true }, h)]],
    deleteTenant: [["initech", (h) => admin.deleteTenant({ id: "initech" }, h)]],
    createUser: [["a new user", (h) => admin.createUser({ username: "mallory", password: "mallory-password-1" }, h)]],
    getUser: [["bob of initech", (h) => admin.getUser({ user: "bob" }, h)]],
    listUsers: [["every user", (h) => admin.listUsers({}, h)]],
    setUserDisabled: [["bob of initech", (h) => admin.setUserDisabled({ user: "bob", disabled: true }, h)]],
    deleteUser: [["bob of initech", (h) => admin.deleteUser({ user: "bob" }, h)]],
    changePassword: [
      ["bob's, as an admin", (h) => admin.changePassword({ user: "bob", newPassword: "bob-password-new-1" }, h)],
      // A password holds in every tenant, and changing it revokes the user's sessions in all of them.
      ["alice's own, with the current one", (h) => admin.changePassword({ newPassword: "alice-password-new-1", currentPassword: ALICE_PASSWORD }, h)],
    ],
    putRole: [["a role (roles apply in every tenant)", (h) => admin.putRole({ name: "spy", permissions: ["read:*"] }, h)]],
    listRoles: [["every role", (h) => admin.listRoles({}, h)]],
    deleteRole: [["a role", (h) => admin.deleteRole({ name: "spy" }, h)]],
    bindRole: [
      ["in initech", (h) => admin.bindRole({ tenant: "initech", user: "bob", role: "WRITE" }, h)],
      ["in every tenant", (h) => admin.bindRole({ tenant: "*", user: "bob", role: "WRITE" }, h)],
    ],
    unbindRole: [["in initech", (h) => admin.unbindRole({ tenant: "initech", user: "bob", role: "READ" }, h)]],
    listRoleBindings: [
      ["of initech", (h) => admin.listRoleBindings({ tenant: "initech" }, h)],
      ["of every tenant", (h) => admin.listRoleBindings({ tenant: "" }, h)],
    ],
    grant: [
      ["in initech", (h) => admin.grant({ tenant: "initech", statement: "GRANT WRITE TO bob" }, h)],
      ["REVOKE in initech", (h) => admin.grant({ tenant: "initech", statement: "REVOKE READ FROM bob" }, h)],
    ],
    createApiKey: [
      ["for initech", (h) => admin.createApiKey({ name: "x", tenant: "initech" }, h)],
      ["for bob", (h) => admin.createApiKey({ name: "x", owner: "bob" }, h)],
    ],
    listApiKeys: [
      ["of every owner", (h) => admin.listApiKeys({ owner: "*" }, h)],
      ["of bob", (h) => admin.listApiKeys({ owner: "bob" }, h)],
    ],
    revokeApiKey: [
      ["alice's key for initech", (h) => admin.revokeApiKey({ id: keys.initech }, h)],
      ["alice's key valid in every tenant", (h) => admin.revokeApiKey({ id: keys.everywhere }, h)],
    ],
    rotateApiKey: [
      ["alice's key for initech", (h) => admin.rotateApiKey({ id: keys.initech }, h)],
      ["alice's key valid in every tenant", (h) => admin.rotateApiKey({ id: keys.everywhere }, h)],
    ],
    setRateLimit: [
      ["of initech", (h) => admin.setRateLimit({ target: tenantTarget("initech"), limit: { ...LIMIT, perMinute: 1 } }, h)],
      ["of alice's key for initech", (h) => admin.setRateLimit({ target: keyTarget(keys.initech), limit: { ...LIMIT, perMinute: 1 } }, h)],
    ],
    getRateLimit: [
      ["of initech", (h) => admin.getRateLimit({ target: tenantTarget("initech") }, h)],
      ["of alice's key for initech", (h) => admin.getRateLimit({ target: keyTarget(keys.initech) }, h)],
    ],
    deleteRateLimit: [
      ["of initech", (h) => admin.deleteRateLimit({ target: tenantTarget("initech") }, h)],
      ["of alice's key for initech", (h) => admin.deleteRateLimit({ target: keyTarget(keys.initech) }, h)],
    ],
    listRateLimits: [["every limit", (h) => admin.listRateLimits({}, h)]],
    listLinkedIdentities: [["alice's (they sign in to every tenant)", (h) => admin.listLinkedIdentities({ user: "alice" }, h)]],
    removeLinkedIdentity: [["one of alice's", (h) => admin.removeLinkedIdentity({ user: "alice", provider: "github", subject: "1" }, h)]],
    rotateSigningKey: [["the signing key of every token", (h) => auth.rotateSigningKey({ dropPrevious: false }, h)]],
  };
  /** Methods a tenant-scoped caller may call, with what keeps them within its tenant. */
  const within: Record<string, string> = {
    listApiKeys: "the caller's own keys of its tenant only (tested below)",
    revokeApiKey: "the caller's own keys of its tenant (tested below)",
    rotateApiKey: "the caller's own keys of its tenant (test/integration/credential-scope)",
    createApiKey: "a key limited to the caller's tenant (test/integration/credential-scope)",
    bindRole: "in the caller's tenant (test/integration/credential-scope)",
    unbindRole: "in the caller's tenant (test/integration/credential-scope)",
    grant: "in the caller's tenant (test/integration/credential-scope)",
    getPolicyVersion: "version numbers only, no tenant's data",
  };

  it("the table covers every admin method and RotateSigningKey", () => {
    const methods = [...AdminService.methods.map((m) => m.localName), "rotateSigningKey"].sort();
    expect([...new Set([...Object.keys(outside), ...Object.keys(within)])].sort()).toEqual(methods);
  });

  const rows = Object.entries(outside).flatMap(([method, cases]) => cases.map(([what, call]) => ({ method, what, call })));
  for (const caller of ["access token of a session in acme", "API key scoped to acme"]) {
    it.each(rows)(`${caller}: $method $what is PERMISSION_DENIED and commits nothing`, async ({ call }) => {
      const before = await committed();
      const err = await grpcError(call(callers[caller]));
      expect({ code: err.code, details: err.details }).toEqual({ code: status.PERMISSION_DENIED, details: expect.any(String) });
      expect(await committed()).toBe(before);
    });
  }

  it("alice's keys outside acme still work, and nothing of initech changed", async () => {
    for (const secret of [secrets.initech, secrets.everywhere]) {
      expect((await decision.check({ credential: secret, action: "read:orders", tenant: "initech" })).allowed).toBe(true);
    }
    expect((await admin.getUser({ user: "bob" }, ROOT)).bindings.map((b) => `${b.role}@${b.tenant}`)).toEqual(["READ@initech"]);
    expect((await admin.getRateLimit({ target: tenantTarget("initech") }, ROOT)).limit?.perMinute).toBe(LIMIT.perMinute);
    expect((await admin.listTenants({}, ROOT)).tenants.map((t) => [t.id, t.disabled])).toEqual([
      ["acme", false],
      ["initech", false],
    ]);
  });

  it.each(["access token of a session in acme", "API key scoped to acme"])("%s lists only its user's keys of acme", async (caller) => {
    for (const owner of ["", "alice"]) {
      const listed = (await admin.listApiKeys({ owner }, callers[caller])).apiKeys;
      expect(listed.map((k) => k.id).sort()).toEqual([keys.caller, keys.acme].sort());
    }
    expect((await admin.listApiKeys({}, ALICE)).apiKeys.map((k) => k.id).sort()).toEqual(Object.values(keys).sort());
  });

  it("still revokes its user's keys of acme", async () => {
    const before = await committed();
    await admin.revokeApiKey({ id: keys.acme }, callers["access token of a session in acme"]);
    expect(await committed()).toBeGreaterThan(before);
    expect((await decision.check({ credential: secrets.acme, action: "read:orders", tenant: "acme" })).allowed).toBe(false);
  });
});
