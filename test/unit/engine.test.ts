/**
 * The engine on its own: a real Postgres store (a fresh schema), in-process buses, no servers.
 * Several engines on one schema stand for several replicas.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { mintApiKey } from "../../src/authn/api-key.js";
import type { Bus } from "../../src/bus/bus.js";
import { createMemoryBus } from "../../src/bus/memory.js";
import type { ApiKeyRecord, UserRecord } from "../../src/core/model.js";
import { Engine, type EngineOptions } from "../../src/engine/engine.js";
import { createLogger } from "../../src/observability/logger.js";
import { createMetrics, type Metrics } from "../../src/observability/metrics.js";
import { openStore } from "../../src/store/index.js";
import type { ChangeEntry } from "../../src/core/change-log.js";
import type { Store } from "../../src/store/store.js";
import { TEST_DATABASE_URL, dropSchema, freshSchema } from "../helpers/verdict.js";

const SYSTEM = { userId: "system" };
const schema = freshSchema();
const stores: Array<{ close(): Promise<void> }> = [];
const engines: Engine[] = [];
let store: Store;

async function openTestStore() {
  const s = await openStore({ databaseUrl: TEST_DATABASE_URL, dataDir: "unused", schema });
  stores.push(s);
  return s;
}

function newEngine(overrides: Partial<EngineOptions> & { bus?: Bus } = {}): Engine & { metrics: Metrics } {
  const metrics = createMetrics();
  const engine = new Engine({
    store,
    bus: createMemoryBus(),
    metrics,
    logger: createLogger("error", {}, () => {}),
    policy: { adminOverride: false, adminRole: "ADMIN" },
    failOpen: false,
    pollIntervalMs: 60_000,
    keyUse: { flushIntervalMs: 60_000, maxPending: 100 },
    ...overrides,
  });
  engines.push(engine);
  return Object.assign(engine, { metrics });
}

async function counted(counter: { get(): Promise<{ values: Array<{ value: number }> }> }): Promise<number> {
  return (await counter.get()).values.reduce((sum, v) => sum + v.value, 0);
}

/** A tenant and a user holding READ there, committed through `engine`. */
async function tenantWithReader(engine: Engine): Promise<{ tenant: string; user: UserRecord }> {
  const tenant = `t-${randomUUID().slice(0, 8)}`;
  const user: UserRecord = { id: randomUUID(), username: `u-${randomUUID().slice(0, 8)}`, disabled: false, root: false, createdAtMs: 1, externalIssuer: "", externalSubject: "" };
  await engine.commit((await store.createTenant({ id: tenant, displayName: tenant, disabled: false, createdAtMs: 1 }, SYSTEM)).version);
  await engine.commit((await store.createUser(user, "not-a-password-hash", SYSTEM)).version);
  await engine.commit((await store.bindRoles([{ tenant, userId: user.id, role: "READ" }], SYSTEM)).version);
  return { tenant, user };
}

/** A key of `owner`, committed through `engine`; returns the secret to check with. */
async function apiKeyOf(engine: Engine, owner: UserRecord): Promise<{ secret: string; id: string }> {
  const minted = mintApiKey();
  const record: ApiKeyRecord = {
    id: minted.id,
    name: "test",
    ownerUserId: owner.id,
    permissions: [],
    tenant: "",
    secretHash: minted.secretHash,
    createdAtMs: 1,
    expiresAtMs: 0,
    revokedAtMs: 0,
    lastUsedAtMs: 0,
  };
  await engine.commit((await store.createApiKey(record, SYSTEM)).version);
  return { secret: minted.secret, id: minted.id };
}

beforeAll(async () => {
  const s = await openTestStore();
  await s.migrate();
  store = s;
});

afterAll(async () => {
  for (const engine of engines) await engine.close();
  for (const s of stores) await s.close();
  await dropSchema(schema);
});

describe("engine", () => {
  it("fails closed before the policy is loaded (open only when configured) and answers once loaded", async () => {
    const closed = newEngine();
    const open = newEngine({ failOpen: true });
    expect(closed.ready).toBe(false);
    expect(closed.check("vk_x", "read:orders", "acme")).toMatchObject({ allowed: false, reason: "INTERNAL_ERROR" });
    expect(open.check("vk_x", "read:orders", "acme")).toMatchObject({ allowed: true, reason: "INTERNAL_ERROR" });
    expect(await closed.waitForVersion(1, 1000)).toBe(false);

    await closed.load();
    expect(closed.ready).toBe(true);
    expect(closed.version).toBe(await store.currentVersion());
    expect(closed.check("", "read:orders", "acme")).toMatchObject({ allowed: false, reason: "UNAUTHENTICATED" });
    expect(closed.check("vk_not-a-key", "read:orders", "acme")).toMatchObject({ reason: "MALFORMED_CREDENTIAL" });
    expect(closed.check("a.b.c", "read:orders", "acme")).toMatchObject({ reason: "UNKNOWN_CREDENTIAL", message: "token credentials are not configured" });
    expect(closed.check("a.b", "read:orders", "acme")).toMatchObject({ reason: "MALFORMED_CREDENTIAL" });
    expect(closed.check("a.b.c.d", "read:orders", "acme")).toMatchObject({ reason: "MALFORMED_CREDENTIAL" });
  });

  it("applies committed changes by version, in order, and answers from them", async () => {
    const engine = newEngine();
    await engine.load();
    const { tenant, user } = await tenantWithReader(engine);
    const key = await apiKeyOf(engine, user);
    const allowed = engine.check(key.secret, "read:orders", tenant);
    expect(allowed).toMatchObject({ allowed: true, reason: "ALLOWED", version: engine.version });
    expect(engine.version).toBe(await store.currentVersion());
    expect(engine.check(key.secret, "write:orders", tenant)).toMatchObject({ allowed: false, reason: "FORBIDDEN" });
    expect(engine.decideResolved({ kind: "user", userId: user.id }, "read:orders", tenant)).toMatchObject({ allowed: true });
    expect(engine.decideResolved({ kind: "user", userId: user.id, tenant: "elsewhere" }, "read:orders", tenant)).toMatchObject({ reason: "WRONG_TENANT" });

    const before = engine.version;
    const revoked = await store.revokeApiKey(key.id, 2, SYSTEM);
    await engine.commit(revoked.version);
    expect(engine.version).toBe(revoked.version);
    expect(revoked.version).toBeGreaterThan(before);
    expect(engine.check(key.secret, "read:orders", tenant)).toMatchObject({ allowed: false, reason: "REVOKED" });
  });

  it("tells listeners what it applied: a reload at load, then each batch of entries", async () => {
    const engine = newEngine();
    const applied: Array<readonly ChangeEntry[] | "reload"> = [];
    const sessions: string[][] = [];
    engine.onApplied((changes) => applied.push(changes));
    engine.onChanges("session", async (ids) => {
      sessions.push([...ids]);
    });
    await engine.load();
    expect(applied).toEqual(["reload"]);
    expect(sessions).toEqual([[]]);

    const { user } = await tenantWithReader(engine);
    const kinds = applied.slice(1).flatMap((batch) => (batch === "reload" ? ["reload"] : batch.map((c) => `${c.kind}:${c.id}`)));
    expect(kinds).toContain(`user:${user.id}`);
    expect(kinds).toContain(`binding:${user.id}`);
    const versions = applied.slice(1).flatMap((batch) => (batch === "reload" ? [] : batch.map((c) => c.version)));
    expect(versions).toEqual([...versions].sort((a, b) => a - b));

    const sessionId = randomUUID();
    const created = await store.createSession(
      { id: sessionId, userId: user.id, tenant: "", createdAtMs: 1, expiresAtMs: Date.now() + 60_000, revokedAtMs: 0, revokeReason: "" },
      { hash: randomUUID(), issuedAtMs: 1, expiresAtMs: Date.now() + 60_000 },
      SYSTEM,
    );
    await engine.commit(created.version);
    expect(sessions.at(-1)).toEqual([sessionId]);
  });

  it("follows another replica's commits through the bus", async () => {
    const bus = createMemoryBus();
    const writer = newEngine({ bus });
    const reader = newEngine({ bus });
    await writer.load();
    await reader.load();
    const { tenant, user } = await tenantWithReader(writer);
    const key = await apiKeyOf(writer, user);
    await vi.waitFor(() => expect(reader.version).toBe(writer.version), { timeout: 15_000, interval: 5 });
    expect(reader.check(key.secret, "read:orders", tenant)).toMatchObject({ allowed: true });
    expect(await counted(reader.metrics.busMessages)).toBeGreaterThan(0);
  });

  it("waits for a min_version: at once when applied, until it arrives, false when it never does", async () => {
    const bus = createMemoryBus();
    const writer = newEngine({ bus });
    const reader = newEngine({ bus });
    await writer.load();
    await reader.load();
    expect(await reader.waitForVersion(reader.version, 0)).toBe(true);

    // The wait may last ten minutes: it must end because the version arrived, not by timing out.
    const target = (await store.currentVersion()) + 3;
    let outcome: boolean | undefined;
    void reader.waitForVersion(target, 600_000).then((reached) => (outcome = reached));
    await tenantWithReader(writer);
    expect(writer.version).toBeGreaterThanOrEqual(target);
    await vi.waitFor(() => expect(outcome).toBe(true), { timeout: 15_000, interval: 5 });

    const never = reader.waitForVersion(reader.version + 1000, 50);
    expect(await never).toBe(false);
  });

  it("catches up by reading the store when a min_version names a version no message announced", async () => {
    const writer = newEngine();
    const lonely = newEngine();
    await writer.load();
    await lonely.load();
    await tenantWithReader(writer);
    expect(lonely.version).toBeLessThan(writer.version);
    expect(await lonely.waitForVersion(writer.version, 5000)).toBe(true);
    expect(lonely.version).toBe(writer.version);
  });

  it("reads the change log at most once per 20 ms for min_versions nobody committed, however many ask", async () => {
    const writer = newEngine();
    const reader = newEngine();
    await writer.load();
    await reader.load();
    const reads = vi.spyOn(store, "changesSince");
    try {
      // A Check may name any min_version without a credential: one every millisecond for 300 ms.
      const started = performance.now();
      const waits: Array<Promise<boolean>> = [];
      while (performance.now() - started < 300) {
        waits.push(reader.waitForVersion(reader.version + 1_000_000, 5));
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      expect(await Promise.all(waits)).not.toContain(true);
      const elapsedMs = performance.now() - started;
      expect(waits.length).toBeGreaterThan(50);
      expect(reads.mock.calls.length).toBeLessThanOrEqual(Math.ceil(elapsedMs / 20) + 2);
      // A version that was committed (and never announced to the reader) is still reached at once.
      await tenantWithReader(writer);
      const waited = performance.now();
      expect(await reader.waitForVersion(writer.version, 5000)).toBe(true);
      expect(performance.now() - waited).toBeLessThan(1000);
    } finally {
      reads.mockRestore();
    }
  });

  it("catches up by polling when no message arrives, and counts the fallback", async () => {
    const writer = newEngine();
    const polling = newEngine({ pollIntervalMs: 20 });
    await writer.load();
    await polling.load();
    await tenantWithReader(writer);
    await vi.waitFor(() => expect(polling.version).toBe(writer.version), { timeout: 15_000, interval: 10 });
    expect(await counted(polling.metrics.pollFallbacks)).toBeGreaterThan(0);
  });

  it("answers from the current policy while a full reload (a trimmed change log) builds the next one", async () => {
    const writer = newEngine();
    await writer.load();
    const { tenant, user } = await tenantWithReader(writer);
    const key = await apiKeyOf(writer, user);
    let snapshot: Awaited<ReturnType<Store["loadSnapshot"]>> | undefined = undefined;
    // The store as a replica sees it once the change log was trimmed past its version: a snapshot only.
    const trimmed = new Proxy(store, {
      get(target, prop) {
        if (snapshot && prop === "changesSince") return async () => undefined;
        if (snapshot && prop === "loadSnapshot") return async () => snapshot;
        const value = Reflect.get(target, prop) as unknown;
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const reader = newEngine({ store: trimmed });
    await reader.load();
    const before = reader.version;
    expect(reader.check(key.secret, "read:orders", tenant)).toMatchObject({ allowed: true });
    await writer.commit((await store.revokeApiKey(key.id, 3, SYSTEM)).version);
    const fresh = await store.loadSnapshot();
    const filler = Array.from({ length: 30_000 }, (_, i) => ({ id: `filler-${i}`, ownerUserId: user.id, permissions: [], tenant: "", secretHash: `filler-hash-${i}`, expiresAtMs: 0, revokedAtMs: 0 }));
    snapshot = { ...fresh, apiKeys: [...fresh.apiKeys, ...filler] };
    const reload = reader.catchUp("test");
    // A Check at the next turn of the event loop runs while the next policy is being built.
    const during = await new Promise((resolve) => setImmediate(() => resolve(reader.check(key.secret, "read:orders", tenant))));
    await reload;
    expect(during).toMatchObject({ allowed: true, version: before });
    expect(reader.check(key.secret, "read:orders", tenant)).toMatchObject({ allowed: false, reason: "REVOKED" });
    expect(reader.current.sizes().apiKeys).toBeGreaterThanOrEqual(30_000);
  });

  it("keeps serving the last good policy when the store cannot be read, and counts the failure", async () => {
    const own = await openTestStore();
    const writer = newEngine();
    const cut = newEngine({ store: own });
    await writer.load();
    await cut.load();
    const { tenant, user } = await tenantWithReader(writer);
    const key = await apiKeyOf(writer, user);
    await cut.catchUp("test");
    const version = cut.version;
    await own.close();
    await writer.commit((await store.revokeApiKey(key.id, 3, SYSTEM)).version);
    await expect(cut.catchUp("test")).resolves.toBeUndefined();
    expect(await counted(cut.metrics.applyFailures)).toBe(1);
    expect(cut.version).toBe(version);
    expect(cut.check(key.secret, "read:orders", tenant)).toMatchObject({ allowed: true, version });
  });

  it("records API key use off the hot path, bounded, and counts what it drops", async () => {
    const nowMs = 1_750_000_000_000;
    const engine = newEngine({ now: () => nowMs, keyUse: { flushIntervalMs: 60_000, maxPending: 1 } });
    await engine.load();
    const { tenant, user } = await tenantWithReader(engine);
    const first = await apiKeyOf(engine, user);
    const second = await apiKeyOf(engine, user);
    expect(engine.check(first.secret, "read:orders", tenant)).toMatchObject({ allowed: true });
    expect(engine.check(first.secret, "read:orders", tenant)).toMatchObject({ allowed: true });
    expect(engine.check(second.secret, "read:orders", tenant)).toMatchObject({ allowed: true });
    // A denial to an identified key is a use too.
    expect(engine.check(second.secret, "write:orders", tenant)).toMatchObject({ allowed: false, reason: "FORBIDDEN" });
    const mistyped = second.secret.slice(0, -1) + (second.secret.endsWith("x") ? "y" : "x");
    expect(engine.check(mistyped, "read:orders", tenant)).toMatchObject({ allowed: false, reason: "MALFORMED_CREDENTIAL" });
    expect(await counted(engine.metrics.keyUseDropped)).toBe(2);
    expect((await store.getApiKey(first.id))?.lastUsedAtMs).toBe(0);
    await engine.close();
    expect((await store.getApiKey(first.id))?.lastUsedAtMs).toBe(nowMs);
    expect((await store.getApiKey(second.id))?.lastUsedAtMs).toBe(0);
  });
});
