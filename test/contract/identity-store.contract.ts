/**
 * The IdentityStore contract (linked identities, identity sessions, pending sign-ins), run against
 * every SQL driver like the Store contract.
 */
import { createHash, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { UserRecord } from "../../src/core/model.js";
import type { PendingAuthorization } from "../../src/store/identity-store.js";
import type { SqlStore } from "../../src/store/sql-store.js";
import { type Actor, StoreError } from "../../src/store/store.js";
import type { StoreContractTarget } from "./store.contract.js";

const SYSTEM: Actor = { userId: "system" };
const NOW = 1_800_000_000_000;
/** A cap on pending authorizations that these tests never reach. */
const ROOMY = 1000;

function hashOf(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function user(): UserRecord {
  const id = randomUUID();
  return { id, username: `u-${id}`, disabled: false, root: false, createdAtMs: NOW, externalIssuer: "", externalSubject: "" };
}

function pending(overrides: Partial<PendingAuthorization> = {}): PendingAuthorization {
  return {
    stateHash: hashOf(randomUUID()),
    provider: "op",
    nonce: randomUUID(),
    codeVerifier: randomUUID(),
    returnTo: "https://app.example/after",
    linkUserId: "",
    expiresAtMs: NOW + 60_000,
    ...overrides,
  };
}

function sessionInput(userId: string, provider: string, subject: string) {
  const id = randomUUID();
  return {
    session: { id, userId, tenant: "", createdAtMs: NOW, expiresAtMs: NOW + 3_600_000, revokedAtMs: 0, revokeReason: "" },
    refresh: { hash: hashOf(id), issuedAtMs: NOW, expiresAtMs: NOW + 3_600_000 },
    provider,
    subject,
  };
}

/** Registers the IdentityStore contract for one driver. */
export function describeIdentityStoreContract(name: string, target: StoreContractTarget): void {
  describe(`IdentityStore contract: ${name}`, () => {
    let store: SqlStore;
    let dispose: () => Promise<void>;

    beforeAll(async () => {
      const opened = await target.open();
      store = opened.store;
      dispose = opened.dispose;
      await store.migrate();
    });

    afterAll(async () => {
      await store.close();
      await dispose();
    });

    it("a pending authorization is taken once, and never after it expired", async () => {
      const p = pending();
      await store.identities.savePendingAuthorization(p, NOW, ROOMY);
      expect(await store.identities.takePendingAuthorization(p.stateHash, NOW)).toEqual(p);
      expect(await store.identities.takePendingAuthorization(p.stateHash, NOW)).toBeUndefined();

      const old = pending({ expiresAtMs: NOW + 10 });
      await store.identities.savePendingAuthorization(old, NOW, ROOMY);
      expect(await store.identities.takePendingAuthorization(old.stateHash, NOW + 10)).toBeUndefined();
      expect(await store.identities.takePendingAuthorization(hashOf("never stored"), NOW)).toBeUndefined();
    });

    it("saving a pending authorization deletes the expired ones", async () => {
      const old = pending({ expiresAtMs: NOW + 5 });
      await store.identities.savePendingAuthorization(old, NOW, ROOMY);
      await store.identities.savePendingAuthorization(pending(), NOW + 10, ROOMY);
      // Taken before its expiry time, it is gone all the same: the second save removed it.
      expect(await store.identities.takePendingAuthorization(old.stateHash, NOW)).toBeUndefined();
    });

    it("saving beyond maxRows drops the authorizations closest to expiry (the oldest started) and says how many", async () => {
      // Later than every other test's rows: they are expired and deleted by the first save.
      const later = NOW + 86_400_000;
      const rows = [1, 2, 3, 4, 5].map((n) => pending({ expiresAtMs: later + n * 1000 }));
      expect(await store.identities.savePendingAuthorization(rows[0], later, 3)).toBe(0);
      expect(await store.identities.savePendingAuthorization(rows[1], later, 3)).toBe(0);
      expect(await store.identities.savePendingAuthorization(rows[2], later, 3)).toBe(0);
      expect(await store.identities.savePendingAuthorization(rows[3], later, 3)).toBe(1);
      expect(await store.identities.savePendingAuthorization(rows[4], later, 2)).toBe(2);
      const taken = await Promise.all(rows.map((r) => store.identities.takePendingAuthorization(r.stateHash, later)));
      expect(taken.map((t) => t !== undefined)).toEqual([false, false, false, true, true]);
    });

    it("two concurrent takes of one state: exactly one gets it", async () => {
      const p = pending();
      await store.identities.savePendingAuthorization(p, NOW, ROOMY);
      const both = await Promise.all([store.identities.takePendingAuthorization(p.stateHash, NOW), store.identities.takePendingAuthorization(p.stateHash, NOW)]);
      expect(both.filter((x) => x !== undefined)).toHaveLength(1);
    });

    it("provisions a user with its link and session in one version; a second link of the identity is refused", async () => {
      const u = user();
      const input = sessionInput(u.id, "op", `sub-${u.id}`);
      const link = { provider: "op", subject: input.subject, userId: u.id, email: "a@example.com", createdAtMs: NOW };
      const before = await store.currentVersion();
      const opened = await store.identities.openIdentitySession({ ...input, link, newUser: { user: u, bindings: [{ tenant: "*", userId: u.id, role: "READ" }] } }, SYSTEM);
      expect(opened.version).toBe(before + 1);
      const changes = await store.changesSince(before, 10);
      expect(changes?.map((c) => `${c.kind}:${c.id}`).sort()).toEqual([`binding:${u.id}`, `session:${input.session.id}`, `user:${u.id}`].sort());
      expect(await store.identities.getLinkedIdentity("op", input.subject)).toEqual(link);
      expect(await store.getBindingsForUser(u.id)).toEqual([{ tenant: "*", userId: u.id, role: "READ" }]);

      const other = user();
      await store.createUser(other, "x", SYSTEM);
      const again = sessionInput(other.id, "op", input.subject);
      const err = await store.identities.openIdentitySession({ ...again, link: { ...link, userId: other.id } }, SYSTEM).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).code).toBe("already_exists");
      expect(await store.getSessions([again.session.id])).toEqual([]);
    });

    it("removing a link revokes the sessions opened through it, and only those", async () => {
      const u = user();
      await store.createUser(u, "x", SYSTEM);
      const a = sessionInput(u.id, "op", `a-${u.id}`);
      const b = sessionInput(u.id, "gh", `b-${u.id}`);
      await store.identities.openIdentitySession({ ...a, link: { provider: "op", subject: a.subject, userId: u.id, email: "", createdAtMs: NOW } }, SYSTEM);
      await store.identities.openIdentitySession({ ...b, link: { provider: "gh", subject: b.subject, userId: u.id, email: "", createdAtMs: NOW } }, SYSTEM);
      expect((await store.identities.listLinkedIdentities(u.id)).map((l) => l.provider)).toEqual(["gh", "op"]);

      const removed = await store.identities.removeLinkedIdentity(u.id, "op", a.subject, NOW + 1, SYSTEM);
      expect(removed.value).toBe(1);
      const [sa, sb] = await store.getSessions([a.session.id, b.session.id].sort());
      const byId = new Map([sa, sb].map((s) => [s.id, s]));
      expect(byId.get(a.session.id)?.revokeReason).toBe("unlinked");
      expect(byId.get(b.session.id)?.revokedAtMs).toBe(0);
      expect(await store.identities.getLinkedIdentity("op", a.subject)).toBeUndefined();

      const err = await store.identities.removeLinkedIdentity(u.id, "op", a.subject, NOW, SYSTEM).catch((e: unknown) => e);
      expect((err as StoreError).code).toBe("not_found");
      const notHis = await store.identities.removeLinkedIdentity(randomUUID(), "gh", b.subject, NOW, SYSTEM).catch((e: unknown) => e);
      expect((notHis as StoreError).code).toBe("not_found");
    });

    it("revokes the sessions of providers no longer configured, and writes nothing when there are none", async () => {
      const u = user();
      await store.createUser(u, "x", SYSTEM);
      const gone = sessionInput(u.id, `gone-${u.id}`, "s1");
      const kept = sessionInput(u.id, "kept", `s2-${u.id}`);
      await store.identities.openIdentitySession(gone, SYSTEM);
      await store.identities.openIdentitySession(kept, SYSTEM);
      const all = ["op", "gh", "kept"];
      const first = await store.identities.revokeSessionsOfRemovedProviders(all, NOW + 1, SYSTEM);
      expect(first?.value).toBeGreaterThanOrEqual(1);
      const [s] = await store.getSessions([gone.session.id]);
      expect(s.revokeReason).toBe("provider_removed");
      expect((await store.getSessions([kept.session.id]))[0].revokedAtMs).toBe(0);
      const version = await store.currentVersion();
      expect(await store.identities.revokeSessionsOfRemovedProviders(all, NOW + 2, SYSTEM)).toBeUndefined();
      expect(await store.currentVersion()).toBe(version);
    });

    it("deleting a user deletes its links", async () => {
      const u = user();
      await store.createUser(u, "x", SYSTEM);
      const a = sessionInput(u.id, "op", `del-${u.id}`);
      await store.identities.openIdentitySession({ ...a, link: { provider: "op", subject: a.subject, userId: u.id, email: "", createdAtMs: NOW } }, SYSTEM);
      await store.deleteUser(u.id, SYSTEM);
      expect(await store.identities.getLinkedIdentity("op", a.subject)).toBeUndefined();
    });
  });
}
