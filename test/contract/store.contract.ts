/**
 * The Store contract: one suite, run against every driver (Cerbos-style TestSuite(store)). Each
 * driver's test file passes a factory for a fresh, unmigrated database.
 */
import { createHash, randomUUID } from "node:crypto";
import { inspect } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiKeyRecord, BindingRecord, RoleRecord, TenantRecord, UserRecord } from "../../src/core/model.js";
import { ALL_TENANTS } from "../../src/core/model.js";
import type { SqlStore } from "../../src/store/sql-store.js";
import type { ChangeEntry, EntityKind } from "../../src/core/change-log.js";
import type { SigningKeyRecord } from "../../src/core/signing-key-record.js";
import type { Actor, Committed, SessionRecord } from "../../src/store/store.js";
import { StoreError } from "../../src/store/store.js";

/** A store on a fresh database, and how to remove that database once the store is closed. */
export interface StoreUnderTest {
  readonly store: SqlStore;
  dispose(): Promise<void>;
}

/** How a driver's test file provides databases to the contract suite. */
export interface StoreContractTarget {
  /** Opens a store on a new, empty, unmigrated database. */
  open(): Promise<StoreUnderTest>;
  /**
   * Opens two stores (two replicas, separate connections) on one new, empty database; omitted by
   * drivers that have a single connection.
   */
  openReplicas?(): Promise<{ readonly stores: readonly [SqlStore, SqlStore]; dispose(): Promise<void> }>;
}

const SYSTEM: Actor = { userId: "system" };
const run = randomUUID().slice(0, 8);
let counter = 0;

function unique(prefix: string): string {
  counter += 1;
  return `${prefix}-${run}-${counter}`;
}

function hashOf(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function newTenant(): TenantRecord {
  return { id: unique("tenant"), displayName: "Tenant", disabled: false, createdAtMs: 1_700_000_000_123 };
}

function newUser(overrides: Partial<UserRecord> = {}): UserRecord {
  const id = unique("user");
  return {
    id,
    username: `name-${id}`,
    disabled: false,
    root: false,
    createdAtMs: 1_700_000_000_456,
    externalIssuer: "",
    externalSubject: "",
    ...overrides,
  };
}

function newKey(ownerUserId: string, overrides: Partial<ApiKeyRecord> = {}): ApiKeyRecord {
  const id = unique("key");
  return {
    id,
    name: `key ${id}`,
    ownerUserId,
    permissions: ["read:things"],
    tenant: "",
    secretHash: hashOf(`secret-${id}`),
    createdAtMs: 1_700_000_000_789,
    expiresAtMs: 1_800_000_000_000,
    revokedAtMs: 0,
    lastUsedAtMs: 0,
    ...overrides,
  };
}

function newRole(permissions: string[] = ["read:things", "write:things"]): RoleRecord {
  return { name: unique("role"), permissions, description: "a test role", builtin: false };
}

function byKindAndId(a: ChangeEntry, b: ChangeEntry): number {
  return a.version - b.version || a.kind.localeCompare(b.kind) || a.id.localeCompare(b.id);
}

async function expectStoreError(promise: Promise<unknown>, code: StoreError["code"]): Promise<StoreError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StoreError);
  expect((err as StoreError).code).toBe(code);
  return err as StoreError;
}

/** Registers the whole contract for one driver. */
export function describeStoreContract(driverName: string, target: StoreContractTarget): void {
  describe(`Store contract: ${driverName}`, () => {
    let fixture: StoreUnderTest;
    let store: SqlStore;
    let freshVersion: number;

    beforeAll(async () => {
      fixture = await target.open();
      store = fixture.store;
      await store.migrate();
      freshVersion = await store.currentVersion();
    });

    afterAll(async () => {
      await store?.close();
      await fixture?.dispose();
    });

    /** Runs `op`, asserting it committed exactly one version with exactly `expected` entries. */
    async function expectOneVersion<T>(
      op: () => Promise<Committed<T>>,
      expected: ReadonlyArray<readonly [EntityKind, string]>,
    ): Promise<Committed<T>> {
      const before = await store.currentVersion();
      const committed = await op();
      expect(committed.version).toBe(before + 1);
      expect(await store.currentVersion()).toBe(before + 1);
      const changes = await store.changesSince(before, 1000);
      expect(changes?.slice().sort(byKindAndId)).toEqual(
        expected.map(([kind, id]) => ({ version: before + 1, kind, id })).sort(byKindAndId),
      );
      return committed;
    }

    /** Asserts that `op` fails with `code` and leaves the version where it was. */
    async function expectRejected(op: () => Promise<unknown>, code: StoreError["code"]): Promise<StoreError> {
      const before = await store.currentVersion();
      const err = await expectStoreError(op(), code);
      expect(await store.currentVersion()).toBe(before);
      return err;
    }

    async function createUser(overrides: Partial<UserRecord> = {}, passwordHash = "$argon2id$v=19$test"): Promise<UserRecord> {
      return (await store.createUser(newUser(overrides), passwordHash, SYSTEM)).value;
    }

    describe("migrations", () => {
      it("start a fresh database at version 0 with an empty change log", async () => {
        expect(freshVersion).toBe(0);
        expect(store.driver).toBe(driverName);
      });

      it("seed the four built-in roles", async () => {
        const builtin = (await store.listRoles()).filter((role) => role.builtin);
        expect(builtin.map((role) => [role.name, role.permissions])).toEqual([
          ["ADMIN", ["*"]],
          ["READ", ["read:*"]],
          ["SUPER", ["*"]],
          ["WRITE", ["read:*", "write:*", "create:*", "update:*", "delete:*"]],
        ]);
        expect((await store.getRole("READ"))?.builtin).toBe(true);
      });

      it("are idempotent when run again, one after another and concurrently", async () => {
        const tenant = (await store.createTenant(newTenant(), SYSTEM)).value;
        const version = await store.currentVersion();
        await store.migrate();
        await Promise.all([store.migrate(), store.migrate(), store.migrate()]);
        expect(await store.currentVersion()).toBe(version);
        expect(await store.getTenant(tenant.id)).toEqual(tenant);
        expect((await store.listRoles()).filter((role) => role.builtin)).toHaveLength(4);
      });

      it.runIf(target.openReplicas !== undefined)(
        "let two replicas migrate one new database at once, then share one version sequence",
        async () => {
          const { stores, dispose } = await target.openReplicas!();
          const [a, b] = stores;
          try {
            await Promise.all([a.migrate(), b.migrate()]);
            expect((await b.listRoles()).filter((role) => role.builtin)).toHaveLength(4);
            expect(await a.currentVersion()).toBe(0);
            const commits = await Promise.all(
              Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).createUser(newUser(), "h", SYSTEM)),
            );
            expect(commits.map((c) => c.version).sort((x, y) => x - y)).toEqual(
              Array.from({ length: 10 }, (_, i) => i + 1),
            );
            expect(await b.changesSince(0, 100)).toHaveLength(10);
          } finally {
            await a.close();
            await b.close();
            await dispose();
          }
        },
      );
    });

    describe("writers", () => {
      it("createTenant, setTenantDisabled: one version, one tenant entry each", async () => {
        const tenant = newTenant();
        const created = await expectOneVersion(() => store.createTenant(tenant, SYSTEM), [["tenant", tenant.id]]);
        expect(created.value).toEqual(tenant);
        await expectOneVersion(() => store.setTenantDisabled(tenant.id, true, SYSTEM), [["tenant", tenant.id]]);
        expect(await store.getTenant(tenant.id)).toEqual({ ...tenant, disabled: true });
        expect(await store.listTenants()).toContainEqual({ ...tenant, disabled: true });
      });

      it("deleteTenant removes the tenant and its bindings, one binding entry per user", async () => {
        const tenant = (await store.createTenant(newTenant(), SYSTEM)).value;
        const other = (await store.createTenant(newTenant(), SYSTEM)).value;
        const [u1, u2] = [await createUser(), await createUser()];
        await store.bindRoles(
          [
            { tenant: tenant.id, userId: u1.id, role: "READ" },
            { tenant: tenant.id, userId: u1.id, role: "WRITE" },
            { tenant: tenant.id, userId: u2.id, role: "READ" },
            { tenant: other.id, userId: u2.id, role: "READ" },
          ],
          SYSTEM,
        );
        await expectOneVersion(() => store.deleteTenant(tenant.id, SYSTEM), [
          ["tenant", tenant.id],
          ["binding", u1.id],
          ["binding", u2.id],
        ]);
        expect(await store.getTenant(tenant.id)).toBeUndefined();
        expect(await store.listBindings(tenant.id)).toEqual([]);
        expect(await store.getBindingsForUser(u2.id)).toEqual([{ tenant: other.id, userId: u2.id, role: "READ" }]);
      });

      it("createUser, setUserDisabled, setPassword: one version, one user entry each", async () => {
        const user = newUser({ externalIssuer: "https://idp.example", externalSubject: unique("sub") });
        const created = await expectOneVersion(() => store.createUser(user, "hash-1", SYSTEM), [["user", user.id]]);
        expect(created.value).toEqual(user);
        expect(await store.getUser(user.id)).toEqual(user);
        expect(await store.getUserByUsername(user.username)).toEqual(user);
        await expectOneVersion(() => store.setUserDisabled(user.id, true, SYSTEM), [["user", user.id]]);
        expect((await store.getUser(user.id))?.disabled).toBe(true);
        await expectOneVersion(() => store.setPassword(user.id, "hash-2", SYSTEM), [["user", user.id]]);
        expect((await store.getUserCredentials(user.username))?.passwordHash).toBe("hash-2");
        expect(await store.listUsers()).toContainEqual({ ...user, disabled: true });
      });

      it("deleteUser removes the user and its bindings and revokes its keys, in one version", async () => {
        const tenant = (await store.createTenant(newTenant(), SYSTEM)).value;
        const user = await createUser();
        const bystander = await createUser();
        await store.bindRoles(
          [
            { tenant: tenant.id, userId: user.id, role: "READ" },
            { tenant: ALL_TENANTS, userId: user.id, role: "ADMIN" },
            { tenant: tenant.id, userId: bystander.id, role: "READ" },
          ],
          SYSTEM,
        );
        const live = (await store.createApiKey(newKey(user.id), SYSTEM)).value;
        const revoked = (await store.createApiKey(newKey(user.id, { revokedAtMs: 1234 }), SYSTEM)).value;
        const kept = (await store.createApiKey(newKey(bystander.id), SYSTEM)).value;
        const startedAt = Date.now();
        await expectOneVersion(() => store.deleteUser(user.id, SYSTEM), [
          ["user", user.id],
          ["binding", user.id],
          ["api_key", live.id],
        ]);
        expect(await store.getUser(user.id)).toBeUndefined();
        expect(await store.getUserCredentials(user.username)).toBeUndefined();
        expect(await store.getBindingsForUser(user.id)).toEqual([]);
        expect((await store.listBindings()).filter((b) => b.userId === user.id)).toEqual([]);
        expect((await store.getApiKey(live.id))?.revokedAtMs).toBeGreaterThanOrEqual(startedAt);
        expect((await store.getApiKey(revoked.id))?.revokedAtMs).toBe(1234);
        expect(await store.getApiKey(kept.id)).toEqual(kept);
        expect(await store.getBindingsForUser(bystander.id)).toHaveLength(1);
        // The username is free again.
        await createUser({ username: user.username });
      });

      it("deleteUser of a user without bindings or keys writes only the user entry", async () => {
        const user = await createUser();
        await expectOneVersion(() => store.deleteUser(user.id, SYSTEM), [["user", user.id]]);
      });

      it("putRole creates and replaces a role, one role entry each", async () => {
        const role = newRole();
        const created = await expectOneVersion(() => store.putRole(role, SYSTEM), [["role", role.name]]);
        expect(created.value).toEqual(role);
        const replaced = { ...role, permissions: ["*:reports"], description: "replaced" };
        await expectOneVersion(() => store.putRole(replaced, SYSTEM), [["role", role.name]]);
        expect(await store.getRole(role.name)).toEqual(replaced);
        expect(await store.listRoles()).toContainEqual(replaced);
      });

      it("deleteRole removes the role and every binding of it", async () => {
        const role = (await store.putRole(newRole(), SYSTEM)).value;
        const tenant = (await store.createTenant(newTenant(), SYSTEM)).value;
        const [u1, u2] = [await createUser(), await createUser()];
        await store.bindRoles(
          [
            { tenant: tenant.id, userId: u1.id, role: role.name },
            { tenant: ALL_TENANTS, userId: u2.id, role: role.name },
            { tenant: tenant.id, userId: u2.id, role: "READ" },
          ],
          SYSTEM,
        );
        await expectOneVersion(() => store.deleteRole(role.name, SYSTEM), [
          ["role", role.name],
          ["binding", u1.id],
          ["binding", u2.id],
        ]);
        expect(await store.getRole(role.name)).toBeUndefined();
        expect(await store.getBindingsForUser(u1.id)).toEqual([]);
        expect(await store.getBindingsForUser(u2.id)).toEqual([{ tenant: tenant.id, userId: u2.id, role: "READ" }]);
      });

      it("bindRoles adds bindings, keeps existing ones, one binding entry per user", async () => {
        const tenant = (await store.createTenant(newTenant(), SYSTEM)).value;
        const [u1, u2] = [await createUser(), await createUser()];
        const first: BindingRecord[] = [
          { tenant: tenant.id, userId: u1.id, role: "READ" },
          { tenant: tenant.id, userId: u1.id, role: "WRITE" },
          { tenant: ALL_TENANTS, userId: u2.id, role: "READ" },
        ];
        await expectOneVersion(() => store.bindRoles(first, SYSTEM), [
          ["binding", u1.id],
          ["binding", u2.id],
        ]);
        await expectOneVersion(
          () => store.bindRoles([first[0], { tenant: tenant.id, userId: u2.id, role: "ADMIN" }], SYSTEM),
          [
            ["binding", u1.id],
            ["binding", u2.id],
          ],
        );
        expect(await store.getBindingsForUser(u1.id)).toEqual(first.slice(0, 2));
        expect(await store.getBindingsForUser(u2.id)).toEqual([
          { tenant: ALL_TENANTS, userId: u2.id, role: "READ" },
          { tenant: tenant.id, userId: u2.id, role: "ADMIN" },
        ]);
        expect(await store.listBindings(tenant.id)).toEqual([
          { tenant: tenant.id, userId: u1.id, role: "READ" },
          { tenant: tenant.id, userId: u1.id, role: "WRITE" },
          { tenant: tenant.id, userId: u2.id, role: "ADMIN" },
        ]);
      });

      it("unbindRoles removes the named bindings that exist, one binding entry per user", async () => {
        const tenant = (await store.createTenant(newTenant(), SYSTEM)).value;
        const user = await createUser();
        await store.bindRoles(
          [
            { tenant: tenant.id, userId: user.id, role: "READ" },
            { tenant: tenant.id, userId: user.id, role: "WRITE" },
          ],
          SYSTEM,
        );
        await expectOneVersion(
          () =>
            store.unbindRoles(
              [
                { tenant: tenant.id, userId: user.id, role: "READ" },
                { tenant: tenant.id, userId: user.id, role: "ADMIN" },
              ],
              SYSTEM,
            ),
          [["binding", user.id]],
        );
        expect(await store.getBindingsForUser(user.id)).toEqual([{ tenant: tenant.id, userId: user.id, role: "WRITE" }]);
      });

      it("createApiKey, revokeApiKey, rotateApiKey: one version, one api_key entry each", async () => {
        const owner = await createUser();
        const key = newKey(owner.id, { tenant: "t1", permissions: ["read:a", "write:b"] });
        const created = await expectOneVersion(() => store.createApiKey(key, SYSTEM), [["api_key", key.id]]);
        expect(created.value).toEqual(key);
        expect(await store.getApiKey(key.id)).toEqual(key);
        await store.recordKeyUse(new Map([[key.id, 5000]]));
        const newHash = hashOf(unique("rotated"));
        const rotated = await expectOneVersion(() => store.rotateApiKey(key.id, newHash, SYSTEM), [["api_key", key.id]]);
        expect(rotated.value).toEqual({ ...key, secretHash: newHash, lastUsedAtMs: 0 });
        await expectOneVersion(() => store.revokeApiKey(key.id, 4242, SYSTEM), [["api_key", key.id]]);
        await expectOneVersion(() => store.revokeApiKey(key.id, 9999, SYSTEM), [["api_key", key.id]]);
        expect((await store.getApiKey(key.id))?.revokedAtMs).toBe(4242);
        expect(await store.listApiKeys(owner.id)).toEqual([{ ...key, secretHash: newHash, revokedAtMs: 4242 }]);
        expect((await store.listApiKeys()).map((k) => k.id)).toContain(key.id);
      });

      it("recordKeyUse and setSetting write no version", async () => {
        const owner = await createUser();
        const key = (await store.createApiKey(newKey(owner.id), SYSTEM)).value;
        const before = await store.currentVersion();
        await store.recordKeyUse(new Map([[key.id, 1000]]));
        await store.setSetting(unique("setting"), "x");
        expect(await store.currentVersion()).toBe(before);
        expect(await store.changesSince(before, 10)).toEqual([]);
      });
    });

    describe("reads", () => {
      it("getUserCredentials returns the user with its password hash; other reads never carry it", async () => {
        const hash = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA";
        const user = await createUser({}, hash);
        expect(await store.getUserCredentials(user.username)).toEqual({ user, passwordHash: hash });
        expect(await store.getUserCredentials(user.username.toUpperCase())).toBeUndefined();
        expect(await store.getUserByUsername(user.username.toUpperCase())).toBeUndefined();
        expect(await store.getUserCredentials(unique("nobody"))).toBeUndefined();
        expect(JSON.stringify(await store.getUser(user.id))).not.toContain(hash);
        expect(JSON.stringify(await store.loadSnapshot())).not.toContain(hash);
      });

      it("missing entities read as undefined or empty", async () => {
        const id = unique("missing");
        expect(await store.getTenant(id)).toBeUndefined();
        expect(await store.getUser(id)).toBeUndefined();
        expect(await store.getUserByUsername(id)).toBeUndefined();
        expect(await store.getRole(id)).toBeUndefined();
        expect(await store.getApiKey(id)).toBeUndefined();
        expect(await store.getBindingsForUser(id)).toEqual([]);
        expect(await store.listBindings(id)).toEqual([]);
        expect(await store.listApiKeys(id)).toEqual([]);
        expect(await store.getSetting(id)).toBeUndefined();
      });

      it("countAdmins counts enabled, non-root holders of the role in every tenant", async () => {
        const role = (await store.putRole(newRole(["*"]), SYSTEM)).value;
        const tenant = (await store.createTenant(newTenant(), SYSTEM)).value;
        const admin = await createUser();
        const disabled = await createUser({ disabled: true });
        const root = await createUser({ root: true });
        const tenantOnly = await createUser();
        await store.bindRoles(
          [
            { tenant: ALL_TENANTS, userId: admin.id, role: role.name },
            { tenant: tenant.id, userId: admin.id, role: role.name },
            { tenant: ALL_TENANTS, userId: disabled.id, role: role.name },
            { tenant: ALL_TENANTS, userId: root.id, role: role.name },
            { tenant: tenant.id, userId: tenantOnly.id, role: role.name },
          ],
          SYSTEM,
        );
        expect(await store.countAdmins(role.name)).toBe(1);
        await store.setUserDisabled(admin.id, true, SYSTEM);
        expect(await store.countAdmins(role.name)).toBe(0);
      });

      it("settings read back the last value written", async () => {
        const name = unique("setting");
        await store.setSetting(name, "one");
        await store.setSetting(name, "two");
        expect(await store.getSetting(name)).toBe("two");
      });

      it("recordKeyUse only moves last use forward and ignores unknown keys", async () => {
        const owner = await createUser();
        const [k1, k2] = [
          (await store.createApiKey(newKey(owner.id), SYSTEM)).value,
          (await store.createApiKey(newKey(owner.id), SYSTEM)).value,
        ];
        await store.recordKeyUse(new Map([[k1.id, 1_700_000_001_000], [k2.id, 500], [unique("ghost"), 9]]));
        await store.recordKeyUse(new Map([[k1.id, 1_700_000_000_500], [k2.id, 700]]));
        expect((await store.getApiKey(k1.id))?.lastUsedAtMs).toBe(1_700_000_001_000);
        expect((await store.getApiKey(k2.id))?.lastUsedAtMs).toBe(700);
        await store.recordKeyUse(new Map());
        await store.recordKeyUse(new Map([[k1.id, 1_700_000_002_000]]));
        expect((await store.getApiKey(k1.id))?.lastUsedAtMs).toBe(1_700_000_002_000);
      });

      it("loadSnapshot returns what was written, at the current version", async () => {
        const tenant = (await store.createTenant(newTenant(), SYSTEM)).value;
        const user = await createUser({ externalIssuer: "https://idp.example", externalSubject: unique("sub") });
        const role = (await store.putRole(newRole(), SYSTEM)).value;
        const bindings: BindingRecord[] = [
          { tenant: tenant.id, userId: user.id, role: role.name },
          { tenant: ALL_TENANTS, userId: user.id, role: "READ" },
        ];
        await store.bindRoles(bindings, SYSTEM);
        const key = (await store.createApiKey(newKey(user.id, { tenant: tenant.id }), SYSTEM)).value;
        const snapshot = await store.loadSnapshot();
        expect(snapshot.version).toBe(await store.currentVersion());
        expect(snapshot.tenants).toContainEqual(tenant);
        expect(snapshot.users).toContainEqual(user);
        expect(snapshot.roles).toContainEqual(role);
        expect(snapshot.roles.filter((r) => r.builtin)).toHaveLength(4);
        expect(snapshot.bindings.filter((b) => b.userId === user.id)).toEqual(expect.arrayContaining(bindings));
        expect(snapshot.bindings.filter((b) => b.userId === user.id)).toHaveLength(2);
        // The snapshot carries only what decisions need of a key (a million must fit in memory).
        const { id, ownerUserId, permissions, tenant: keyTenant, secretHash, expiresAtMs, revokedAtMs } = key;
        expect(snapshot.apiKeys).toContainEqual({ id, ownerUserId, permissions, tenant: keyTenant, secretHash, expiresAtMs, revokedAtMs });
        expect(snapshot.users).toEqual(await store.listUsers().then((users) => users.sort((a, b) => a.id.localeCompare(b.id))));
      });

      it("loadSnapshot under concurrent writes holds exactly the writes up to its version", async () => {
        const writes = Array.from({ length: 12 }, () => store.createUser(newUser(), "h", SYSTEM));
        const snapshots = [store.loadSnapshot(), store.loadSnapshot(), store.loadSnapshot()];
        const commits = await Promise.all(writes);
        for (const snapshot of await Promise.all(snapshots)) {
          const ids = new Set(snapshot.users.map((u) => u.id));
          for (const commit of commits) {
            expect(ids.has(commit.value.id)).toBe(commit.version <= snapshot.version);
          }
        }
      });
    });

    describe("errors", () => {
      it("already_exists for a taken tenant id, user id, username, external identity or key id", async () => {
        const tenant = (await store.createTenant(newTenant(), SYSTEM)).value;
        const err = await expectRejected(() => store.createTenant({ ...tenant, displayName: "again" }, SYSTEM), "already_exists");
        expect(err.message).toContain(tenant.id);

        const hash = "$argon2id$v=19$secret-password-hash";
        const user = await createUser({ externalIssuer: "https://idp.example", externalSubject: unique("sub") });
        for (const clash of [
          newUser({ username: user.username }),
          newUser({ username: user.username.toUpperCase() }),
          { ...newUser(), id: user.id },
          newUser({ externalIssuer: user.externalIssuer, externalSubject: user.externalSubject }),
        ]) {
          const e = await expectRejected(() => store.createUser(clash, hash, SYSTEM), "already_exists");
          expect(inspect(e, { depth: 10 })).not.toContain(hash);
        }
        const e = await expectRejected(() => store.createUser(newUser({ username: user.username }), hash, SYSTEM), "already_exists");
        expect(e.message).toContain(user.username);
        // An empty issuer means "not external": any number of users may have it.
        await createUser();
        await createUser();

        const key = (await store.createApiKey(newKey(user.id), SYSTEM)).value;
        await expectRejected(() => store.createApiKey({ ...newKey(user.id), id: key.id }, SYSTEM), "already_exists");
      });

      it("already_exists for a reused key secret, without the hash anywhere in the error", async () => {
        const owner = await createUser();
        const key = (await store.createApiKey(newKey(owner.id), SYSTEM)).value;
        const other = (await store.createApiKey(newKey(owner.id), SYSTEM)).value;
        for (const op of [
          () => store.createApiKey(newKey(owner.id, { secretHash: key.secretHash }), SYSTEM),
          () => store.rotateApiKey(other.id, key.secretHash, SYSTEM),
        ]) {
          const err = await expectRejected(op, "already_exists");
          expect(inspect(err, { depth: 10 })).not.toContain(key.secretHash);
        }
        expect((await store.getApiKey(other.id))?.secretHash).toBe(other.secretHash);
      });

      it("already_exists for a role name that differs from another only by case, built-ins included", async () => {
        await expectRejected(() => store.putRole({ name: "Read", permissions: ["read:x"], description: "", builtin: false }, SYSTEM), "already_exists");
        const name = unique("role");
        await store.putRole({ name, permissions: ["read:x"], description: "", builtin: false }, SYSTEM);
        await expectRejected(() => store.putRole({ name: name.toUpperCase(), permissions: ["*"], description: "", builtin: false }, SYSTEM), "already_exists");
        expect(await store.getRole(name.toUpperCase())).toBeUndefined();
      });

      it("invalid_argument for text (NUL) or numbers the database cannot store, writing nothing", async () => {
        const err = await expectRejected(() => store.createTenant({ ...newTenant(), displayName: "a\u0000b" }, SYSTEM), "invalid_argument");
        expect(err.message).not.toContain("\u0000");
        await expectStoreError(store.getUserCredentials("ali\u0000ce"), "invalid_argument");
        const owner = await createUser();
        await expectRejected(() => store.createApiKey(newKey(owner.id, { expiresAtMs: 2 ** 64 }), SYSTEM), "invalid_argument");
      });

      it("not_found for updates and deletes of missing entities", async () => {
        const id = unique("missing");
        const ops: Array<() => Promise<unknown>> = [
          () => store.setTenantDisabled(id, true, SYSTEM),
          () => store.deleteTenant(id, SYSTEM),
          () => store.setUserDisabled(id, true, SYSTEM),
          () => store.deleteUser(id, SYSTEM),
          () => store.setPassword(id, "h", SYSTEM),
          () => store.deleteRole(id, SYSTEM),
          () => store.revokeApiKey(id, 1, SYSTEM),
          () => store.rotateApiKey(id, hashOf(id), SYSTEM),
        ];
        for (const op of ops) {
          const err = await expectRejected(op, "not_found");
          expect(err.message).toContain(id);
        }
        const user = await createUser();
        await expectRejected(
          () => store.unbindRoles([{ tenant: ALL_TENANTS, userId: user.id, role: "READ" }], SYSTEM),
          "not_found",
        );
        await expectRejected(() => store.unbindRoles([], SYSTEM), "not_found");
      });

      it("not_found for bindings or keys naming a missing user, role or tenant, writing nothing", async () => {
        const user = await createUser();
        const tenant = (await store.createTenant(newTenant(), SYSTEM)).value;
        const good = { tenant: tenant.id, userId: user.id, role: "READ" };
        await expectRejected(() => store.bindRoles([good, { ...good, userId: unique("ghost") }], SYSTEM), "not_found");
        await expectRejected(() => store.bindRoles([good, { ...good, role: unique("ghost") }], SYSTEM), "not_found");
        await expectRejected(() => store.bindRoles([good, { ...good, tenant: unique("ghost") }], SYSTEM), "not_found");
        expect(await store.getBindingsForUser(user.id)).toEqual([]);
        await expectRejected(() => store.createApiKey(newKey(unique("ghost")), SYSTEM), "not_found");
      });
    });

    describe("change feed", () => {
      it("changesSince is ascending, honours the limit, and pages through every entry", async () => {
        const before = await store.currentVersion();
        const tenants = [newTenant(), newTenant(), newTenant(), newTenant(), newTenant()];
        for (const tenant of tenants) await store.createTenant(tenant, SYSTEM);
        const expected = tenants.map((t, i) => ({ version: before + i + 1, kind: "tenant", id: t.id }));
        expect(await store.changesSince(before, 100)).toEqual(expected);
        expect(await store.changesSince(before, 2)).toEqual(expected.slice(0, 2));
        expect(await store.changesSince(before + 3, 100)).toEqual(expected.slice(3));
        const paged: ChangeEntry[] = [];
        let after = before;
        for (;;) {
          const page = (await store.changesSince(after, 2)) ?? [];
          if (page.length === 0) break;
          expect(page.length).toBeLessThanOrEqual(2);
          paged.push(...page);
          after = page[page.length - 1].version;
        }
        expect(paged).toEqual(expected);
        expect(await store.changesSince(before + 5, 10)).toEqual([]);
      });

      it("changesSince never splits one version's entries across pages", async () => {
        const user = await createUser();
        const tenant = (await store.createTenant(newTenant(), SYSTEM)).value;
        await store.bindRoles([{ tenant: tenant.id, userId: user.id, role: "READ" }], SYSTEM);
        const key = (await store.createApiKey(newKey(user.id), SYSTEM)).value;
        const before = await store.currentVersion();
        const other = newTenant();
        await store.createTenant(other, SYSTEM);
        await store.deleteUser(user.id, SYSTEM);
        expect(await store.changesSince(before, 2)).toEqual([{ version: before + 1, kind: "tenant", id: other.id }]);
        const whole = [
          { version: before + 2, kind: "api_key", id: key.id },
          { version: before + 2, kind: "binding", id: user.id },
          { version: before + 2, kind: "user", id: user.id },
        ];
        expect(await store.changesSince(before + 1, 1)).toEqual(whole);
        expect(await store.changesSince(before + 1, 3)).toEqual(whole);
      });

      it("concurrent writers commit distinct consecutive versions, visible in commit order without gaps", async () => {
        const before = await store.currentVersion();
        let writing = true;
        let seen = before;
        const observed: ChangeEntry[] = [];
        const poller = (async () => {
          while (writing) {
            const page = await store.changesSince(seen, 7);
            expect(page).toBeDefined();
            for (const entry of page ?? []) {
              expect(entry.version).toBe(seen + 1);
              seen = entry.version;
              observed.push(entry);
            }
            await new Promise((resolve) => setImmediate(resolve));
          }
        })();
        const commits = await Promise.all(
          Array.from({ length: 20 }, () => store.createUser(newUser(), "h", SYSTEM)),
        ).finally(() => {
          writing = false;
        });
        await poller;
        observed.push(...((await store.changesSince(seen, 100)) ?? []));
        const versions = commits.map((c) => c.version).sort((a, b) => a - b);
        expect(versions).toEqual(Array.from({ length: 20 }, (_, i) => before + i + 1));
        expect(observed).toEqual(
          commits
            .map((c) => ({ version: c.version, kind: "user", id: c.value.id }))
            .sort((a, b) => a.version - b.version),
        );
        expect(await store.currentVersion()).toBe(before + 20);
      });

      it("changesSince returns undefined once the log is trimmed past the caller", async () => {
        const first = await store.createTenant(newTenant(), SYSTEM);
        const second = await store.createTenant(newTenant(), SYSTEM);
        await store.trimChangeLog(second.version);
        expect(await store.changesSince(first.version - 1, 10)).toBeUndefined();
        expect(await store.changesSince(first.version, 10)).toEqual([
          { version: second.version, kind: "tenant", id: second.value.id },
        ]);
        // Trimming never moves backwards, nor past the next version.
        await store.trimChangeLog(1);
        expect(await store.changesSince(first.version - 1, 10)).toBeUndefined();
        await store.trimChangeLog(Number.MAX_SAFE_INTEGER);
        expect(await store.changesSince(second.version, 10)).toEqual([]);
        const third = await store.createTenant(newTenant(), SYSTEM);
        expect(await store.changesSince(second.version, 10)).toEqual([
          { version: third.version, kind: "tenant", id: third.value.id },
        ]);
      });
    });

    describe("sessions, signing keys and external users", () => {
      const refresh = (issuedAtMs = 1000, expiresAtMs = 10_000) => ({ hash: hashOf(unique("refresh")), issuedAtMs, expiresAtMs });
      const newSession = (userId: string): SessionRecord => ({
        id: unique("session"),
        userId,
        tenant: "",
        createdAtMs: 1000,
        expiresAtMs: 10_000,
        revokedAtMs: 0,
        revokeReason: "",
      });

      it("createSession, refreshSession, revokeSession: one version, one session entry each", async () => {
        const user = await createUser();
        const session = newSession(user.id);
        const first = refresh();
        const created = await expectOneVersion(() => store.createSession(session, first, SYSTEM), [["session", session.id]]);
        expect(created.value).toEqual(session);
        const second = refresh(2000, 20_000);
        const rotated = await expectOneVersion(() => store.refreshSession(first.hash, second, 2000, SYSTEM), [["session", session.id]]);
        expect(rotated.value).toEqual({ kind: "rotated", session: { ...session, expiresAtMs: 20_000 } });
        expect(await store.findSessionByRefreshHash(first.hash)).toEqual({ ...session, expiresAtMs: 20_000 });
        const revoked = await expectOneVersion(() => store.revokeSession(session.id, 3000, "logout", SYSTEM), [["session", session.id]]);
        expect(revoked.value).toMatchObject({ revokedAtMs: 3000, revokeReason: "logout" });
        const again = await store.revokeSession(session.id, 4000, "other", SYSTEM);
        expect(again.value).toMatchObject({ revokedAtMs: 3000, revokeReason: "logout" });
        await expectRejected(() => store.refreshSession(second.hash, refresh(), 3500, SYSTEM), "not_found");
        await expectRejected(() => store.revokeSession(unique("missing"), 1, "logout", SYSTEM), "not_found");
      });

      it("setPassword and disabling revoke the user's active sessions in the same version, keeping only the one named", async () => {
        const live = (userId: string): SessionRecord => ({ ...newSession(userId), createdAtMs: Date.now(), expiresAtMs: Date.now() + 3_600_000 });
        const user = await createUser();
        const bystander = await createUser();
        const [s1, s2, kept, expired] = [live(user.id), live(user.id), live(user.id), newSession(user.id)];
        for (const s of [s1, s2, kept, expired]) await store.createSession(s, refresh(s.createdAtMs, s.expiresAtMs), SYSTEM);
        const other = live(bystander.id);
        await store.createSession(other, refresh(other.createdAtMs, other.expiresAtMs), SYSTEM);
        await expectOneVersion(() => store.setPassword(user.id, "$argon2id$v=19$new", SYSTEM, kept.id), [
          ["user", user.id],
          ["session", s1.id],
          ["session", s2.id],
        ]);
        const byId = new Map((await store.getSessions([s1.id, s2.id, kept.id, expired.id, other.id])).map((s) => [s.id, s]));
        expect([s1.id, s2.id].map((id) => byId.get(id)?.revokeReason)).toEqual(["password_changed", "password_changed"]);
        expect([kept.id, expired.id, other.id].map((id) => byId.get(id)?.revokedAtMs)).toEqual([0, 0, 0]);
        await expectOneVersion(() => store.setUserDisabled(user.id, true, SYSTEM), [["user", user.id], ["session", kept.id]]);
        expect((await store.getSessions([kept.id]))[0]).toMatchObject({ revokeReason: "user_disabled" });
        await expectOneVersion(() => store.setUserDisabled(user.id, false, SYSTEM), [["user", user.id]]);
        expect((await store.getSessions([kept.id]))[0].revokedAtMs).toBeGreaterThan(0);
      });

      it("refreshSession of a used token revokes the session; unknown and expired tokens write nothing", async () => {
        const user = await createUser();
        const session = newSession(user.id);
        const first = refresh();
        await store.createSession(session, first, SYSTEM);
        await store.refreshSession(first.hash, refresh(), 2000, SYSTEM);
        const reused = await expectOneVersion(() => store.refreshSession(first.hash, refresh(), 2500, SYSTEM), [["session", session.id]]);
        expect(reused.value).toEqual({ kind: "reused", session: { ...session, revokedAtMs: 2500, revokeReason: "refresh_reuse" } });
        await expectRejected(() => store.refreshSession(hashOf(unique("nothing")), refresh(), 2000, SYSTEM), "not_found");
        const other = newSession(user.id);
        const expiring = refresh(1000, 5000);
        await store.createSession(other, expiring, SYSTEM);
        await expectRejected(() => store.refreshSession(expiring.hash, refresh(), 6000, SYSTEM), "not_found");
      });

      it("two concurrent presentations of one refresh token: one rotates, the other revokes", async () => {
        const user = await createUser();
        const session = newSession(user.id);
        const first = refresh();
        await store.createSession(session, first, SYSTEM);
        const outcomes = await Promise.all([store.refreshSession(first.hash, refresh(), 2000, SYSTEM), store.refreshSession(first.hash, refresh(), 2000, SYSTEM)]);
        expect(outcomes.map((o) => o.value.kind).sort()).toEqual(["reused", "rotated"]);
        expect((await store.getSessions([session.id]))[0].revokeReason).toBe("refresh_reuse");
      });

      it("getSessions and listRevokedSessions read what was written", async () => {
        const user = await createUser();
        const [a, b] = [newSession(user.id), newSession(user.id)];
        await store.createSession(a, refresh(), SYSTEM);
        await store.createSession(b, refresh(), SYSTEM);
        await store.revokeSession(b.id, 7_000_000, "logout", SYSTEM);
        expect(await store.getSessions([a.id, b.id, unique("missing")])).toEqual([a, { ...b, revokedAtMs: 7_000_000, revokeReason: "logout" }].sort((x, y) => x.id.localeCompare(y.id)));
        expect(await store.getSessions([])).toEqual([]);
        const revoked = (await store.listRevokedSessions(6_999_999)).map((s) => s.id);
        expect(revoked).toContain(b.id);
        expect(revoked).not.toContain(a.id);
        expect((await store.listRevokedSessions(7_000_001)).map((s) => s.id)).not.toContain(b.id);
      });

      it("replaceSigningKeys writes one entry per kid and refuses a stale expected active kid", async () => {
        const key = (kid: string, retiredAtMs: number | null): SigningKeyRecord => ({
          kid,
          alg: "EdDSA",
          publicJwk: { kty: "OKP", crv: "Ed25519", x: "eA", kid, alg: "EdDSA", use: "sig" },
          privateKey: `sealed-${kid}`,
          encrypted: true,
          createdAtMs: 1000,
          retiredAtMs,
        });
        expect(await store.listSigningKeys()).toEqual([]);
        await expectOneVersion(() => store.replaceSigningKeys([key("k1", null)], null, SYSTEM), [["signing_key", "k1"]]);
        await expectRejected(() => store.replaceSigningKeys([key("kx", null)], null, SYSTEM), "conflict");
        await expectOneVersion(() => store.replaceSigningKeys([key("k1", 2000), key("k2", null)], "k1", SYSTEM), [
          ["signing_key", "k1"],
          ["signing_key", "k2"],
        ]);
        expect(await store.listSigningKeys()).toEqual([key("k1", 2000), key("k2", null)]);
        await expectRejected(() => store.replaceSigningKeys([key("k3", null)], "k1", SYSTEM), "conflict");
        await expectOneVersion(() => store.replaceSigningKeys([key("k3", null)], "k2", SYSTEM), [
          ["signing_key", "k1"],
          ["signing_key", "k2"],
          ["signing_key", "k3"],
        ]);
        expect((await store.listSigningKeys()).map((k) => k.kid)).toEqual(["k3"]);
      });

      it("createExternalUser creates the user and its bindings in one version, once per identity", async () => {
        const tenant = (await store.createTenant(newTenant(), SYSTEM)).value;
        const user = newUser({ externalIssuer: "https://idp.example", externalSubject: unique("sub") });
        const created = await expectOneVersion(() => store.createExternalUser(user, [{ tenant: tenant.id, userId: user.id, role: "READ" }], SYSTEM), [
          ["user", user.id],
          ["binding", user.id],
        ]);
        expect(created.value).toEqual(user);
        expect(await store.getBindingsForUser(user.id)).toEqual([{ tenant: tenant.id, userId: user.id, role: "READ" }]);
        const twin = newUser({ externalIssuer: user.externalIssuer, externalSubject: user.externalSubject });
        await expectRejected(() => store.createExternalUser(twin, [], SYSTEM), "already_exists");
      });
    });

    describe("rate limits", () => {
      it("puts, replaces, reads, lists and deletes limits, one change-log entry per write", async () => {
        const id = unique("role");
        const spec = { perMinute: 100, perHour: 1000, burst: 10, shadow: false };
        await expectOneVersion(() => store.putRateLimit({ scope: "role", id, spec }, SYSTEM), [["rate_limit", `role:${id}`]]);
        expect(await store.getRateLimit("role", id)).toEqual({ scope: "role", id, spec });
        expect(await store.getRateLimit("tenant", id)).toBeUndefined();
        const replaced = { perMinute: 0, perHour: 5_000_000_000 / 10, burst: 0, shadow: true };
        await expectOneVersion(() => store.putRateLimit({ scope: "role", id, spec: replaced }, SYSTEM), [["rate_limit", `role:${id}`]]);
        await store.putRateLimit({ scope: "tenant", id, spec }, SYSTEM);
        const listed = (await store.listRateLimits()).filter((l) => l.id === id);
        expect(listed).toEqual([
          { scope: "role", id, spec: replaced },
          { scope: "tenant", id, spec },
        ]);
        await expectOneVersion(() => store.deleteRateLimit("role", id, SYSTEM), [["rate_limit", `role:${id}`]]);
        expect(await store.getRateLimit("role", id)).toBeUndefined();
        await expectRejected(() => store.deleteRateLimit("role", id, SYSTEM), "not_found");
      });
    });

    describe("lifecycle", () => {
      it("ping answers while open; a closed store reports unavailable", async () => {
        await store.ping();
        await store.close();
        await expectStoreError(store.ping(), "unavailable");
        await expectStoreError(store.getUser("anyone"), "unavailable");
        await store.close();
      });
    });
  });
}
