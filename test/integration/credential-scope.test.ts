/**
 * A credential never mints a credential wider than itself (scope, permissions, expiry), against a
 * real server over gRPC on the machine's Postgres: CreateApiKey and RotateApiKey called with a
 * tenant-scoped token, a tenant-scoped key, a narrowed key or an expiring key; ChangePassword of
 * one's own password with anything but the password; role bindings beyond the granter's own
 * permissions.
 */
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { AuthService } from "../../gen/verdict/v1/auth_pb.js";
import { DecisionService } from "../../gen/verdict/v1/decision_pb.js";
import { Reason } from "../../gen/verdict/v1/types_pb.js";
import { type TestClient, grpcClient, grpcError } from "../helpers/grpc.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const basic = (user: string, pass: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}` });
const ROOT = basic("root", ROOT_PASSWORD);
const ALICE = basic("alice", "alice-password-1");
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

type Verdict = Awaited<ReturnType<typeof startTestVerdict>>;

describe("a credential never mints a credential wider than itself", () => {
  const schema = freshSchema();
  let v: Verdict;
  let admin: TestClient<typeof AdminService>;
  let auth: TestClient<typeof AuthService>;
  let decision: TestClient<typeof DecisionService>;

  const check = (credential: string, tenant: string, action = "read:orders") => decision.check({ credential, action, tenant });
  const key = async (fields: { tenant?: string; permissions?: string[]; expireTimeUnixMs?: bigint }, headers = ALICE) =>
    admin.createApiKey({ name: "k", ...fields }, headers);

  beforeAll(async () => {
    v = await startTestVerdict({ DATABASE_URL: TEST_DATABASE_URL, VERDICT_LOGIN_MAX_ATTEMPTS: "5" }, schema);
    admin = grpcClient(AdminService, v.grpcAddress);
    auth = grpcClient(AuthService, v.grpcAddress);
    decision = grpcClient(DecisionService, v.grpcAddress);
    for (const id of ["acme", "initech"]) await admin.createTenant({ id }, ROOT);
    await admin.createUser({ username: "alice", password: "alice-password-1" }, ROOT);
    await admin.createUser({ username: "bob", password: "bob-password-12" }, ROOT);
    await admin.putRole({ name: "order-desk", permissions: ["read:orders", "write:orders", "admin:bindings"] }, ROOT);
    await admin.bindRole({ tenant: "acme", user: "alice", role: "order-desk" }, ROOT);
    await admin.bindRole({ tenant: "initech", user: "alice", role: "READ" }, ROOT);
  });
  afterAll(async () => {
    for (const c of [admin, auth, decision]) c?.close();
    await v?.close();
    await dropSchema(schema);
  });

  it("a tenant-scoped token creates keys limited to its tenant and its session's end, and no wider", async () => {
    const t = (await auth.login({ username: "alice", password: "alice-password-1", tenant: "acme" })).tokens!;
    const sessionEnd = Date.now() + Number(t.refreshExpiresIn) * 1000;
    const created = await admin.createApiKey({ name: "x", owner: "alice" }, bearer(t.accessToken));
    expect(created.apiKey?.tenant).toBe("acme");
    expect(Number(created.apiKey?.expireTimeUnixMs)).toBeGreaterThan(0);
    expect(Number(created.apiKey?.expireTimeUnixMs)).toBeLessThanOrEqual(sessionEnd + 5000);
    expect((await check(created.secret, "acme")).allowed).toBe(true);
    expect((await check(created.secret, "initech")).reason).toBe(Reason.WRONG_TENANT);

    const elsewhere = await grpcError(admin.createApiKey({ name: "y", tenant: "initech" }, bearer(t.accessToken)));
    expect({ code: elsewhere.code, details: elsewhere.details }).toEqual({ code: status.PERMISSION_DENIED, details: expect.stringContaining("acme") });
    const forever = await grpcError(admin.createApiKey({ name: "y", expireTimeUnixMs: BigInt(sessionEnd + 10 * DAY) }, bearer(t.accessToken)));
    expect(forever.code).toBe(status.PERMISSION_DENIED);
    const shorter = await admin.createApiKey({ name: "z", expireTimeUnixMs: BigInt(Date.now() + HOUR) }, bearer(t.accessToken));
    expect(shorter.apiKey).toMatchObject({ tenant: "acme" });
  });

  it("a tenant-scoped or expiring key creates keys no wider in tenant or expiry", async () => {
    const expiry = Date.now() + 2 * DAY;
    const scoped = await key({ tenant: "acme", expireTimeUnixMs: BigInt(expiry) });
    const child = await admin.createApiKey({ name: "child" }, { "x-api-key": scoped.secret });
    expect(child.apiKey).toMatchObject({ tenant: "acme", expireTimeUnixMs: BigInt(expiry) });
    expect((await check(child.secret, "initech")).reason).toBe(Reason.WRONG_TENANT);
    for (const ask of [{ tenant: "initech" }, { expireTimeUnixMs: BigInt(expiry + HOUR) }]) {
      const err = await grpcError(admin.createApiKey({ name: "wider", ...ask }, { "x-api-key": scoped.secret }));
      expect({ ask, code: err.code }).toEqual({ ask, code: status.PERMISSION_DENIED });
    }
    const sooner = await admin.createApiKey({ name: "sooner", expireTimeUnixMs: BigInt(expiry - HOUR) }, { "x-api-key": scoped.secret });
    expect(sooner.apiKey).toMatchObject({ tenant: "acme", expireTimeUnixMs: BigInt(expiry - HOUR) });
  });

  it("a narrowed key creates keys with a subset of its permissions, and refuses more", async () => {
    const narrowed = await key({ permissions: ["read:orders", "write:*"] });
    const same = await admin.createApiKey({ name: "same" }, { "x-api-key": narrowed.secret });
    expect(same.apiKey?.permissions).toEqual(["read:orders", "write:*"]);
    const sub = await admin.createApiKey({ name: "sub", permissions: ["write:orders"] }, { "x-api-key": narrowed.secret });
    expect(sub.apiKey?.permissions).toEqual(["write:orders"]);
    expect((await check(sub.secret, "acme", "write:orders")).allowed).toBe(true);
    expect((await check(sub.secret, "acme", "read:orders")).reason).toBe(Reason.FORBIDDEN);
    for (const permissions of [["read:*"], ["*"], ["*:orders"], ["read:orders", "delete:orders"]]) {
      const err = await grpcError(admin.createApiKey({ name: "wider", permissions }, { "x-api-key": narrowed.secret }));
      expect({ permissions, code: err.code }).toEqual({ permissions, code: status.PERMISSION_DENIED });
    }
  });

  it("RotateApiKey needs a credential at least as wide as the key", async () => {
    const unscoped = await key({});
    const t = (await auth.login({ username: "alice", password: "alice-password-1", tenant: "acme" })).tokens!;
    expect((await grpcError(admin.rotateApiKey({ id: unscoped.apiKey!.id }, bearer(t.accessToken)))).code).toBe(status.PERMISSION_DENIED);
    expect((await check(unscoped.secret, "initech")).allowed).toBe(true);

    const scoped = await key({ tenant: "acme", expireTimeUnixMs: BigInt(Date.now() + DAY) });
    expect((await grpcError(admin.rotateApiKey({ id: unscoped.apiKey!.id }, { "x-api-key": scoped.secret }))).code).toBe(status.PERMISSION_DENIED);
    const self = await admin.rotateApiKey({ id: scoped.apiKey!.id }, { "x-api-key": scoped.secret });
    expect((await check(self.secret, "acme")).allowed).toBe(true);
    const scopedChild = await key({ tenant: "acme", expireTimeUnixMs: BigInt(Date.now() + HOUR) });
    expect((await admin.rotateApiKey({ id: scopedChild.apiKey!.id }, bearer(t.accessToken))).apiKey?.id).toBe(scopedChild.apiKey!.id);

    const narrowed = await key({ permissions: ["read:orders"] });
    const narrowedSibling = await key({ permissions: ["read:orders"] });
    const wideSibling = await key({ permissions: ["read:*"] });
    expect((await admin.rotateApiKey({ id: narrowedSibling.apiKey!.id }, { "x-api-key": narrowed.secret })).apiKey?.permissions).toEqual(["read:orders"]);
    expect((await grpcError(admin.rotateApiKey({ id: wideSibling.apiKey!.id }, { "x-api-key": narrowed.secret }))).code).toBe(status.PERMISSION_DENIED);
  });

  it("a narrowed key revokes only its user's keys within its permissions and tenant, unless it holds admin:keys in every tenant", async () => {
    const narrowed = await key({ permissions: ["read:orders", "write:orders"] });
    const h = { "x-api-key": narrowed.secret };
    const wider = await Promise.all([key({ permissions: ["read:*"] }), key({}), key({ permissions: ["read:orders", "delete:orders"] })]);
    for (const k of wider) {
      const err = await grpcError(admin.revokeApiKey({ id: k.apiKey!.id }, h));
      expect({ permissions: k.apiKey!.permissions, code: err.code, details: err.details }).toEqual({
        permissions: k.apiKey!.permissions,
        code: status.PERMISSION_DENIED,
        details: expect.stringContaining("narrowed to read:orders, write:orders"),
      });
      expect((await check(k.secret, "acme")).allowed).toBe(true);
    }
    for (const permissions of [["read:orders"], ["read:orders", "write:orders"]]) {
      const within = await key({ permissions });
      await admin.revokeApiKey({ id: within.apiKey!.id }, h);
      expect((await check(within.secret, "acme")).reason).toBe(Reason.REVOKED);
    }
    const scoped = await key({ tenant: "acme", permissions: ["read:orders"] });
    const initech = await key({ tenant: "initech", permissions: ["read:orders"] });
    expect((await grpcError(admin.revokeApiKey({ id: initech.apiKey!.id }, { "x-api-key": scoped.secret }))).code).toBe(status.PERMISSION_DENIED);
    await admin.revokeApiKey({ id: scoped.apiKey!.id }, { "x-api-key": scoped.secret });

    // A key narrowed to admin:keys manages every user's keys, its own wider ones too; sessions are not narrowed.
    const rootWide = await admin.createApiKey({ name: "wide" }, ROOT);
    const keyAdmin = await admin.createApiKey({ name: "key-admin", permissions: ["admin:keys"] }, ROOT);
    await admin.revokeApiKey({ id: rootWide.apiKey!.id }, { "x-api-key": keyAdmin.secret });
    await admin.revokeApiKey({ id: wider[0].apiKey!.id }, { "x-api-key": keyAdmin.secret });
    const t = (await auth.login({ username: "alice", password: "alice-password-1", tenant: "" })).tokens!;
    await admin.revokeApiKey({ id: wider[1].apiKey!.id }, bearer(t.accessToken));
    expect((await check(wider[1].secret, "acme")).reason).toBe(Reason.REVOKED);
  });

  it("a narrowed key lists only its user's keys within its permissions and tenant, unless it holds admin:keys in every tenant", async () => {
    const narrowed = await key({ permissions: ["read:orders", "write:orders"] });
    const wider = await Promise.all([
      key({ permissions: ["read:*"] }),
      key({}),
      key({ permissions: ["read:orders", "delete:orders"] }),
      key({ tenant: "acme" }),
    ]);
    const within = await Promise.all([key({ permissions: ["read:orders"] }), key({ tenant: "initech", permissions: ["write:orders"] })]);
    const ids = (res: { apiKeys: { id: string }[] }) => res.apiKeys.map((k) => k.id);
    const listed = ids(await admin.listApiKeys({}, { "x-api-key": narrowed.secret }));
    for (const k of wider) expect({ permissions: k.apiKey!.permissions, tenant: k.apiKey!.tenant, listed: listed.includes(k.apiKey!.id) }).toEqual({ permissions: k.apiKey!.permissions, tenant: k.apiKey!.tenant, listed: false });
    for (const k of [narrowed, ...within]) expect(listed).toContain(k.apiKey!.id);
    expect(ids(await admin.listApiKeys({ owner: "alice" }, { "x-api-key": narrowed.secret }))).toEqual(listed);

    // A scoped key lists its tenant's keys within its permissions only.
    const scoped = await key({ tenant: "acme", permissions: ["read:orders"] });
    const scopedListed = ids(await admin.listApiKeys({}, { "x-api-key": scoped.secret }));
    expect(scopedListed).toContain(scoped.apiKey!.id);
    for (const k of [narrowed, ...wider, ...within]) expect(scopedListed).not.toContain(k.apiKey!.id);

    // Sessions and unnarrowed keys list every key of the user; a key narrowed to admin:keys lists everyone's.
    const all = [narrowed, scoped, ...wider, ...within].map((k) => k.apiKey!.id);
    const t = (await auth.login({ username: "alice", password: "alice-password-1", tenant: "" })).tokens!;
    expect(ids(await admin.listApiKeys({}, bearer(t.accessToken)))).toEqual(expect.arrayContaining(all));
    expect(ids(await admin.listApiKeys({}, { "x-api-key": wider[1].secret }))).toEqual(expect.arrayContaining(all));
    const keyAdmin = await admin.createApiKey({ name: "key-admin", permissions: ["admin:keys"] }, ROOT);
    expect(ids(await admin.listApiKeys({ owner: "alice" }, { "x-api-key": keyAdmin.secret }))).toEqual(expect.arrayContaining(all));
    expect(ids(await admin.listApiKeys({ owner: "*" }, { "x-api-key": keyAdmin.secret }))).toEqual(expect.arrayContaining([...all, keyAdmin.apiKey!.id]));
  });

  it("changing one's own password with a token or key needs the current password", async () => {
    const t = (await auth.login({ username: "bob", password: "bob-password-12", tenant: "" })).tokens!;
    const missing = await grpcError(admin.changePassword({ newPassword: "bob-password-new-1" }, bearer(t.accessToken)));
    expect({ code: missing.code, details: missing.details }).toEqual({ code: status.PERMISSION_DENIED, details: expect.stringContaining("current_password") });
    const wrong = await grpcError(admin.changePassword({ newPassword: "bob-password-new-1", currentPassword: "not-bobs-password" }, bearer(t.accessToken)));
    expect(wrong.code).toBe(status.PERMISSION_DENIED);
    const bobKey = await admin.createApiKey({ name: "bob" }, basic("bob", "bob-password-12"));
    expect((await grpcError(admin.changePassword({ newPassword: "bob-password-new-1" }, { "x-api-key": bobKey.secret }))).code).toBe(status.PERMISSION_DENIED);
    await admin.changePassword({ newPassword: "bob-password-new-1", currentPassword: "bob-password-12" }, { "x-api-key": bobKey.secret });
    await admin.changePassword({ newPassword: "bob-password-new-2" }, basic("bob", "bob-password-new-1"));
    await admin.changePassword({ user: "bob", newPassword: "bob-password-new-3" }, ROOT);
    await auth.login({ username: "bob", password: "bob-password-new-3", tenant: "" });
  });

  it("guessing the current password through ChangePassword meets the login limit", async () => {
    await admin.createUser({ username: "dave", password: "dave-password-1" }, ROOT);
    const t = (await auth.login({ username: "dave", password: "dave-password-1", tenant: "" })).tokens!;
    const codes: number[] = [];
    for (let i = 0; i < 8; i++) {
      codes.push((await grpcError(admin.changePassword({ newPassword: "dave-password-2", currentPassword: `guess-${i}-password` }, bearer(t.accessToken)))).code);
    }
    expect(codes.slice(0, 5)).toEqual(Array(5).fill(status.PERMISSION_DENIED));
    expect(codes.slice(5)).toEqual(Array(3).fill(status.RESOURCE_EXHAUSTED));
    // Even the right one is refused until the window ends, and the password did not change.
    expect((await grpcError(admin.changePassword({ newPassword: "dave-password-2", currentPassword: "dave-password-1" }, bearer(t.accessToken)))).code).toBe(status.RESOURCE_EXHAUSTED);
  });

  it("binding a role needs the granter to hold every permission of it in that tenant", async () => {
    // alice holds admin:bindings in acme through order-desk, but not ADMIN.
    const t = (await auth.login({ username: "alice", password: "alice-password-1", tenant: "acme" })).tokens!;
    for (const call of [
      () => admin.bindRole({ tenant: "acme", user: "alice", role: "ADMIN" }, bearer(t.accessToken)),
      () => admin.grant({ tenant: "acme", statement: "GRANT WRITE TO bob" }, bearer(t.accessToken)),
    ]) {
      const err = await grpcError(call());
      expect({ code: err.code, details: err.details }).toEqual({ code: status.PERMISSION_DENIED, details: expect.stringMatching(/holds|does not hold/) });
    }
    expect((await check(t.accessToken, "acme", "delete:orders")).reason).toBe(Reason.FORBIDDEN);
    await admin.putRole({ name: "order-reader", permissions: ["read:orders"] }, ROOT);
    await admin.grant({ tenant: "acme", statement: "GRANT order-reader TO bob" }, bearer(t.accessToken));
    await admin.unbindRole({ tenant: "acme", user: "bob", role: "order-reader" }, bearer(t.accessToken));
  });

  it("writing a role needs the writer to hold its patterns in every tenant: no rewriting one's own role to '*'", async () => {
    await admin.createUser({ username: "carol", password: "carol-password-1" }, ROOT);
    await admin.putRole({ name: "role-keeper", permissions: ["admin:roles", "read:*"] }, ROOT);
    await admin.bindRole({ tenant: "*", user: "carol", role: "role-keeper" }, ROOT);
    const carol = basic("carol", "carol-password-1");
    for (const permissions of [["*"], ["admin:roles", "read:*", "admin:bindings"], ["write:orders"]]) {
      const err = await grpcError(admin.putRole({ name: "role-keeper", permissions }, carol));
      expect({ permissions, code: err.code }).toEqual({ permissions, code: status.PERMISSION_DENIED });
    }
    expect((await admin.putRole({ name: "order-browser", permissions: ["read:orders", "read:*"] }, carol)).role?.permissions).toEqual(["read:orders", "read:*"]);
    expect((await check((await auth.login({ username: "carol", password: "carol-password-1", tenant: "" })).tokens!.accessToken, "acme", "write:orders")).reason).toBe(Reason.FORBIDDEN);
    const narrowed = await admin.createApiKey({ name: "roles", permissions: ["admin:roles", "read:orders"] }, carol);
    expect((await grpcError(admin.putRole({ name: "order-browser", permissions: ["read:*"] }, { "x-api-key": narrowed.secret }))).code).toBe(status.PERMISSION_DENIED);
    await admin.putRole({ name: "order-browser", permissions: ["read:orders"] }, { "x-api-key": narrowed.secret });
  });

  it("a revoked or expired key, or a disabled user's, authenticates no admin call: it mints, rotates and revokes nothing", async () => {
    await admin.createUser({ username: "erin", password: "erin-password-1" }, ROOT);
    await admin.bindRole({ tenant: "acme", user: "erin", role: "READ" }, ROOT);
    const erin = basic("erin", "erin-password-1");
    const revoked = await admin.createApiKey({ name: "revoked" }, erin);
    await admin.revokeApiKey({ id: revoked.apiKey!.id }, erin);
    const expiring = await admin.createApiKey({ name: "expiring", expireTimeUnixMs: BigInt(Date.now() + 1000) }, erin);
    const sibling = await admin.createApiKey({ name: "sibling" }, erin);
    const spare = await admin.createApiKey({ name: "spare" }, erin);
    await new Promise((r) => setTimeout(r, 1100));
    const calls = (h: Record<string, string>): Array<[string, () => Promise<unknown>]> => [
      ["CreateApiKey", () => admin.createApiKey({ name: "minted" }, h)],
      ["RotateApiKey", () => admin.rotateApiKey({ id: sibling.apiKey!.id }, h)],
      ["RevokeApiKey", () => admin.revokeApiKey({ id: sibling.apiKey!.id }, h)],
      ["ListApiKeys", () => admin.listApiKeys({}, h)],
      ["GetPolicyVersion", () => admin.getPolicyVersion({}, h)],
      ["ChangePassword", () => admin.changePassword({ newPassword: "erin-password-2", currentPassword: "erin-password-1" }, h)],
    ];
    for (const [what, secret] of [["revoked", revoked.secret], ["expired", expiring.secret]]) {
      for (const [method, call] of calls({ "x-api-key": secret })) {
        const err = await grpcError(call()).catch((e: Error) => ({ code: -1, details: e.message }));
        expect.soft({ what, method, code: err.code, details: err.details }).toEqual({ what, method, code: status.UNAUTHENTICATED, details: expect.stringMatching(/REVOKED|EXPIRED/) });
      }
    }
    expect((await admin.listApiKeys({}, erin)).apiKeys.map((k) => k.name).sort()).toEqual(["expiring", "revoked", "sibling", "spare"]);
    expect((await check(sibling.secret, "acme")).allowed).toBe(true);

    await admin.setUserDisabled({ user: "erin", disabled: true }, ROOT);
    for (const [method, call] of calls({ "x-api-key": spare.secret })) {
      const err = await grpcError(call()).catch((e: Error) => ({ code: -1, details: e.message }));
      expect.soft({ method, code: err.code, details: err.details }).toEqual({ method, code: status.UNAUTHENTICATED, details: expect.stringContaining("DISABLED") });
    }
    expect((await admin.listApiKeys({ owner: "erin" }, ROOT)).apiKeys.map((k) => k.name).sort()).toEqual(["expiring", "revoked", "sibling", "spare"]);
  });

  it("refuses an expiry the database cannot hold with INVALID_ARGUMENT", async () => {
    for (const ms of [9_223_372_036_854_775_807n, 253_402_300_800_000n]) {
      expect((await grpcError(key({ expireTimeUnixMs: ms }))).code).toBe(status.INVALID_ARGUMENT);
    }
  });
});
