/**
 * Admin and auth calls tell nobody what exists before they know who is asking: every AdminService
 * and AuthService method, called with no credential or a wrong one against an existing and a
 * missing tenant, user, role, API key or signing key, answers the same UNAUTHENTICATED code and
 * message for both and commits nothing. A caller that is authenticated but not allowed the call
 * there gets the same PERMISSION_DENIED for both (the message naming only what it asked for).
 * Real server over gRPC on the machine's Postgres.
 */
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { AuthService } from "../../gen/verdict/v1/auth_pb.js";
import { mintApiKey } from "../../src/authn/api-key.js";
import { type TestClient, grpcClient, grpcError } from "../helpers/grpc.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const basic = (user: string, pass: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}` });
const ROOT = basic("root", ROOT_PASSWORD);
const LIMIT = { perMinute: 100, perHour: 1000, burst: 10, shadow: false };
/** A well-formed API key id that no key has. */
const NO_KEY = "zzzzzzzzzzzz";

type Verdict = Awaited<ReturnType<typeof startTestVerdict>>;
type Headers = Record<string, string>;
type Call = (h: Headers) => Promise<unknown>;

/** One request against an existing object and the same request against a missing one. */
interface Row {
  readonly method: string;
  readonly what: string;
  /** The existing and the missing object's names, as a message may name them. */
  readonly names: readonly [string, string];
  readonly existing: Call;
  readonly missing: Call;
  /** Why an authenticated caller without permission may get something else than PERMISSION_DENIED. */
  readonly allowedToCaller?: string;
}

describe("admin and auth calls reveal nothing before authentication", () => {
  const schema = freshSchema();
  let v: Verdict;
  let admin: TestClient<typeof AdminService>;
  let auth: TestClient<typeof AuthService>;
  let rootKey: Headers;
  let bobKeyId = "";
  const wrong: Record<string, Headers> = {
    "no credential": {},
    "a wrong password": basic("bob", "not-bobs-password"),
    "an unknown username": basic("nobody", "any-password-1"),
    "an unknown API key": { "x-api-key": mintApiKey().secret },
    "a malformed API key": { "x-api-key": "vk_abc" },
    "a token that does not verify": { authorization: "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln" },
    "a revoked API key": {},
  };
  /** alice is ADMIN in acme only: authenticated, but allowed nothing below. */
  const outsider: Record<string, Headers> = { "alice's API key": {}, "alice's access token": {} };

  const committed = async () => (await admin.getPolicyVersion({}, rootKey)).committedVersion;

  beforeAll(async () => {
    v = await startTestVerdict(
      { DATABASE_URL: TEST_DATABASE_URL, VERDICT_LOGIN_MAX_ATTEMPTS: "10000", VERDICT_LOGIN_MAX_ATTEMPTS_PER_ADDRESS: "1000000" },
      schema,
    );
    admin = grpcClient(AdminService, v.grpcAddress);
    auth = grpcClient(AuthService, v.grpcAddress);
    rootKey = { "x-api-key": (await admin.createApiKey({ name: "root" }, ROOT)).secret };
    for (const id of ["acme", "initech"]) await admin.createTenant({ id }, rootKey);
    await admin.createUser({ username: "alice", password: "alice-password-1" }, rootKey);
    await admin.createUser({ username: "bob", password: "bob-password-12" }, rootKey);
    await admin.putRole({ name: "desk", permissions: ["read:orders"] }, rootKey);
    await admin.bindRole({ tenant: "acme", user: "alice", role: "ADMIN" }, rootKey);
    await admin.bindRole({ tenant: "initech", user: "bob", role: "desk" }, rootKey);
    bobKeyId = (await admin.createApiKey({ name: "bob", owner: "bob" }, rootKey)).apiKey!.id;
    const revoked = await admin.createApiKey({ name: "revoked", owner: "bob" }, rootKey);
    await admin.revokeApiKey({ id: revoked.apiKey!.id }, rootKey);
    wrong["a revoked API key"] = { "x-api-key": revoked.secret };
    for (const [scope, value] of [["tenant", "initech"], ["role", "desk"], ["keyId", bobKeyId]] as const) {
      await admin.setRateLimit({ target: { target: { case: scope, value } }, limit: LIMIT }, rootKey);
    }
    outsider["alice's API key"] = { "x-api-key": (await admin.createApiKey({ name: "alice" }, basic("alice", "alice-password-1"))).secret };
    const tokens = (await auth.login({ username: "alice", password: "alice-password-1", tenant: "" })).tokens!;
    outsider["alice's access token"] = { authorization: `Bearer ${tokens.accessToken}` };
  });
  afterAll(async () => {
    for (const c of [admin, auth]) c?.close();
    await v?.close();
    await dropSchema(schema);
  });

  const target = (scope: "tenant" | "role" | "keyId", value: string) => ({ target: { case: scope, value } });
  /** A row whose request differs only in the object it names. */
  const row = (method: string, what: string, names: readonly [string, string], call: (name: string, h: Headers) => Promise<unknown>, allowedToCaller?: string): Row => ({
    method,
    what,
    names,
    existing: (h) => call(names[0], h),
    missing: (h) => call(names[1], h),
    allowedToCaller,
  });
  /** A row for a method that names no object: the same request twice. */
  const plain = (method: string, call: Call, allowedToCaller?: string): Row => ({ method, what: "", names: ["", ""], existing: call, missing: call, allowedToCaller });
  const TENANTS = ["initech", "nosuch"] as const;
  const USERS = ["bob", "nobody"] as const;
  const ROLES = ["desk", "ghost"] as const;
  const keys = (): readonly [string, string] => [bobKeyId, NO_KEY];

  const rows = (): Row[] => [
    row("createTenant", "id", ["initech", "umbrella"], (id, h) => admin.createTenant({ id }, h)),
    plain("listTenants", (h) => admin.listTenants({}, h)),
    row("setTenantDisabled", "tenant", TENANTS, (id, h) => admin.setTenantDisabled({ id, disabled: true }, h)),
    row("deleteTenant", "tenant", TENANTS, (id, h) => admin.deleteTenant({ id }, h)),
    row("createUser", "username", USERS, (username, h) => admin.createUser({ username, password: "new-password-12" }, h)),
    row("getUser", "user", USERS, (user, h) => admin.getUser({ user }, h)),
    plain("listUsers", (h) => admin.listUsers({}, h)),
    row("setUserDisabled", "user", USERS, (user, h) => admin.setUserDisabled({ user, disabled: true }, h)),
    row("deleteUser", "user", USERS, (user, h) => admin.deleteUser({ user }, h)),
    row("listLinkedIdentities", "user", USERS, (user, h) => admin.listLinkedIdentities({ user }, h)),
    row("removeLinkedIdentity", "user", USERS, (user, h) => admin.removeLinkedIdentity({ user, provider: "github", subject: "1" }, h)),
    row("changePassword", "user", USERS, (user, h) => admin.changePassword({ user, newPassword: "new-password-12" }, h)),
    row("putRole", "role", ROLES, (name, h) => admin.putRole({ name, permissions: ["read:*"] }, h)),
    plain("listRoles", (h) => admin.listRoles({}, h)),
    row("deleteRole", "role", ROLES, (name, h) => admin.deleteRole({ name }, h)),
    row("bindRole", "tenant", TENANTS, (tenant, h) => admin.bindRole({ tenant, user: "bob", role: "READ" }, h)),
    row("bindRole", "user", USERS, (user, h) => admin.bindRole({ tenant: "initech", user, role: "READ" }, h)),
    row("bindRole", "role", ROLES, (role, h) => admin.bindRole({ tenant: "initech", user: "bob", role }, h)),
    row("unbindRole", "tenant", TENANTS, (tenant, h) => admin.unbindRole({ tenant, user: "bob", role: "desk" }, h)),
    row("unbindRole", "user", USERS, (user, h) => admin.unbindRole({ tenant: "initech", user, role: "desk" }, h)),
    row("listRoleBindings", "tenant", TENANTS, (tenant, h) => admin.listRoleBindings({ tenant }, h)),
    row("grant", "tenant", TENANTS, (tenant, h) => admin.grant({ tenant, statement: "GRANT READ TO bob" }, h)),
    row("grant", "user", USERS, (user, h) => admin.grant({ tenant: "initech", statement: `GRANT READ TO ${user}` }, h)),
    row("grant", "role", ROLES, (role, h) => admin.grant({ tenant: "initech", statement: `GRANT ${role} TO bob` }, h)),
    row("createApiKey", "owner", USERS, (owner, h) => admin.createApiKey({ name: "k", owner }, h)),
    row("createApiKey", "tenant", TENANTS, (tenant, h) => admin.createApiKey({ name: "k", tenant }, h), "a key of one's own for any tenant"),
    row("listApiKeys", "owner", USERS, (owner, h) => admin.listApiKeys({ owner }, h)),
    row("revokeApiKey", "key", keys(), (id, h) => admin.revokeApiKey({ id }, h)),
    row("rotateApiKey", "key", keys(), (id, h) => admin.rotateApiKey({ id }, h)),
    ...(["setRateLimit", "getRateLimit", "deleteRateLimit"] as const).flatMap((method) =>
      ([["tenant", TENANTS], ["role", ROLES], ["keyId", keys()]] as const).map(([scope, names]) =>
        row(method, scope, names, (name, h) =>
          method === "setRateLimit" ? admin.setRateLimit({ target: target(scope, name), limit: LIMIT }, h) : admin[method]({ target: target(scope, name) }, h),
        ),
      ),
    ),
    plain("listRateLimits", (h) => admin.listRateLimits({}, h)),
    plain("getPolicyVersion", (h) => admin.getPolicyVersion({}, h), "version numbers, to any authenticated caller"),
    plain("rotateSigningKey", (h) => auth.rotateSigningKey({ dropPrevious: false }, h)),
    row("login", "username", USERS, (username) => auth.login({ username, password: "not-the-password" }), "the password is the credential"),
    row("login", "tenant", TENANTS, (tenant) => auth.login({ username: "bob", password: "not-the-password", tenant }), "the password is the credential"),
  ];
  /** Methods that take no caller credential: what they are answered by. */
  const noCaller: Record<string, string> = {
    refresh: "the refresh token itself (test/integration/tokens)",
    logout: "the refresh or access token itself (test/integration/session-revocation)",
    getJwks: "nothing: public keys, for anyone",
  };

  it("the table covers every AdminService and AuthService method", () => {
    const methods = [...AdminService.methods, ...AuthService.methods].map((m) => m.localName).sort();
    expect([...new Set([...rows().map((r) => r.method), ...Object.keys(noCaller)])].sort()).toEqual(methods);
  });

  const answer = async (call: Promise<unknown>) => {
    const err = await grpcError(call);
    return { code: status[err.code], details: err.details };
  };

  it.each(Object.keys(wrong))("with %s: UNAUTHENTICATED, the same for an existing and a missing object, and nothing committed", async (credential) => {
    const before = await committed();
    for (const r of rows()) {
      const existing = await answer(r.existing(wrong[credential]));
      const missing = await answer(r.missing(wrong[credential]));
      expect.soft({ call: `${r.method} ${r.what}`, existing, missing }).toEqual({
        call: `${r.method} ${r.what}`,
        existing: { code: "UNAUTHENTICATED", details: expect.any(String) },
        missing: existing,
      });
    }
    expect(await committed()).toBe(before);
  });

  it.each(Object.keys(outsider))("with %s, allowed none of it: PERMISSION_DENIED, the same for an existing and a missing object", async (caller) => {
    const before = await committed();
    for (const r of rows().filter((r) => r.allowedToCaller === undefined)) {
      const existing = await answer(r.existing(outsider[caller]));
      const missing = await answer(r.missing(outsider[caller]));
      const named = (details: string, name: string) => (name === "" ? details : details.split(name).join("<name>"));
      expect.soft({ call: `${r.method} ${r.what}`, existing: existing.code, missing: missing.code }).toEqual({
        call: `${r.method} ${r.what}`,
        existing: "PERMISSION_DENIED",
        missing: "PERMISSION_DENIED",
      });
      expect.soft({ call: `${r.method} ${r.what}`, details: named(missing.details, r.names[1]) }).toEqual({
        call: `${r.method} ${r.what}`,
        details: named(existing.details, r.names[0]),
      });
    }
    expect(await committed()).toBe(before);
  });

  it("a caller allowed the call still learns what is missing", async () => {
    for (const [call, code] of [
      [admin.bindRole({ tenant: "nosuch", user: "bob", role: "READ" }, rootKey), "NOT_FOUND"],
      [admin.listRoleBindings({ tenant: "nosuch" }, rootKey), "NOT_FOUND"],
      [admin.grant({ tenant: "nosuch", statement: "GRANT READ TO bob" }, rootKey), "NOT_FOUND"],
      [admin.unbindRole({ tenant: "nosuch", user: "bob", role: "READ" }, rootKey), "NOT_FOUND"],
      [admin.revokeApiKey({ id: NO_KEY }, rootKey), "NOT_FOUND"],
      [admin.rotateApiKey({ id: NO_KEY }, rootKey), "NOT_FOUND"],
      [admin.changePassword({ user: "nobody", newPassword: "new-password-12" }, rootKey), "NOT_FOUND"],
      [admin.createApiKey({ name: "k", owner: "nobody" }, rootKey), "NOT_FOUND"],
      [admin.listApiKeys({ owner: "nobody" }, rootKey), "NOT_FOUND"],
      [admin.revokeApiKey({ id: "not-a-key-id" }, rootKey), "INVALID_ARGUMENT"],
    ] as const) {
      expect((await answer(call)).code).toBe(code);
    }
    // alice is allowed in acme: there she learns that a user is missing.
    expect((await answer(admin.bindRole({ tenant: "acme", user: "nobody", role: "READ" }, outsider["alice's API key"]))).code).toBe("NOT_FOUND");
    // Her own password and keys need no admin permission.
    expect((await answer(admin.changePassword({ user: "alice", newPassword: "new-password-12" }, outsider["alice's API key"]))).code).toBe("PERMISSION_DENIED");
    expect((await admin.listApiKeys({ owner: "alice" }, outsider["alice's API key"])).apiKeys.length).toBe(1);
  });
});
