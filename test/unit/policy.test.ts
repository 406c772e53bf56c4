import { describe, expect, it } from "vitest";
import type { ApiKeyRecord, BindingRecord, PolicyData, UserRecord } from "../../src/core/model.js";
import { Policy, type PolicyOptions } from "../../src/core/policy.js";

const NOW = 1_800_000_000_000;
const user = (id: string, extra: Partial<UserRecord> = {}): UserRecord => ({
  id,
  username: id,
  disabled: false,
  root: false,
  createdAtMs: 0,
  externalIssuer: "",
  externalSubject: "",
  ...extra,
});
const key = (id: string, ownerUserId: string, extra: Partial<ApiKeyRecord> = {}): ApiKeyRecord => ({
  id,
  name: id,
  ownerUserId,
  permissions: [],
  tenant: "",
  secretHash: `hash-${id}`,
  createdAtMs: 0,
  expiresAtMs: 0,
  revokedAtMs: 0,
  lastUsedAtMs: 0,
  ...extra,
});
const bind = (userId: string, tenant: string, role: string): BindingRecord => ({ userId, tenant, role });

function fixture(options: PolicyOptions = { adminOverride: false, adminRole: "ADMIN" }): Policy {
  const data: PolicyData = {
    version: 7,
    tenants: [
      { id: "acme", displayName: "Acme", disabled: false, createdAtMs: 0 },
      { id: "globex", displayName: "Globex", disabled: false, createdAtMs: 0 },
      { id: "closed", displayName: "Closed", disabled: true, createdAtMs: 0 },
    ],
    users: [
      user("root", { root: true }),
      user("alice"),
      user("bob"),
      user("carol", { disabled: true }),
      user("dave"),
      user("erin"),
    ],
    roles: [{ name: "order-reader", permissions: ["read:orders", "list:orders"], description: "", builtin: false }],
    bindings: [
      bind("alice", "acme", "WRITE"),
      bind("bob", "acme", "order-reader"),
      bind("bob", "globex", "READ"),
      bind("carol", "acme", "ADMIN"),
      bind("dave", "*", "ADMIN"),
      bind("erin", "globex", "ADMIN"),
    ],
    apiKeys: [
      key("k-alice", "alice"),
      key("k-narrow", "alice", { permissions: ["read:*"] }),
      key("k-escalate", "bob", { permissions: ["*"] }),
      key("k-expired", "alice", { expiresAtMs: NOW - 1 }),
      key("k-future", "alice", { expiresAtMs: NOW + 1000 }),
      key("k-revoked", "alice", { revokedAtMs: NOW - 5 }),
      key("k-tenant", "bob", { tenant: "globex" }),
      key("k-orphan", "nobody"),
    ],
  };
  return Policy.fromData(data, options);
}

describe("Policy.decideForUser", () => {
  const p = fixture();
  const cases: Array<[user: string, action: string, tenant: string, reason: string]> = [
    ["alice", "read:orders", "acme", "ALLOWED"],
    ["alice", "delete:orders", "acme", "ALLOWED"],
    ["alice", "admin:users", "acme", "FORBIDDEN"],
    ["alice", "read:orders", "globex", "WRONG_TENANT"],
    ["alice", "read:orders", "nowhere", "UNKNOWN_TENANT"],
    ["alice", "read:orders", "closed", "UNKNOWN_TENANT"],
    ["alice", "", "acme", "INVALID_REQUEST"],
    ["alice", "read", "acme", "INVALID_REQUEST"],
    ["alice", "read:*", "acme", "INVALID_REQUEST"],
    ["alice", "read:orders", "", "INVALID_REQUEST"],
    ["alice", "read:orders", "t".repeat(64), "INVALID_REQUEST"],
    ["bob", "read:orders", "acme", "ALLOWED"],
    ["bob", "list:orders", "acme", "ALLOWED"],
    ["bob", "read:invoices", "acme", "FORBIDDEN"],
    ["bob", "read:invoices", "globex", "ALLOWED"],
    ["carol", "read:orders", "acme", "DISABLED"],
    ["dave", "admin:users", "acme", "ALLOWED"],
    ["dave", "admin:users", "globex", "ALLOWED"],
    ["dave", "admin:tenants", "*", "ALLOWED"],
    ["alice", "admin:tenants", "*", "WRONG_TENANT"],
    ["erin", "read:orders", "acme", "WRONG_TENANT"],
    ["root", "anything:goes", "acme", "ALLOWED"],
    ["root", "admin:tenants", "*", "ALLOWED"],
    ["ghost", "read:orders", "acme", "UNKNOWN_CREDENTIAL"],
  ];
  it.each(cases)("%s %s in %s -> %s", (u, action, tenant, reason) => {
    const d = p.decideForUser(u, action, tenant);
    expect(d.reason).toBe(reason);
    expect(d.allowed).toBe(reason === "ALLOWED");
    expect(d.version).toBe(7);
  });

  it("names the principal and its roles", () => {
    const d = p.decideForUser("bob", "read:orders", "acme");
    expect(d.principal).toEqual({ kind: "user", userId: "bob", username: "bob", keyId: "", tenant: "acme", roles: ["order-reader"] });
    expect(p.decideForUser("root", "read:x", "acme").principal?.roles).toEqual(["SUPER"]);
  });

  it("lets an admin act in other tenants only with admin override on", () => {
    const on = fixture({ adminOverride: true, adminRole: "ADMIN" });
    expect(on.decideForUser("erin", "read:orders", "acme").reason).toBe("ALLOWED");
    expect(on.decideForUser("alice", "read:orders", "globex").reason).toBe("WRONG_TENANT");
  });
});

describe("Policy.decideForKey", () => {
  const p = fixture();
  const k = (id: string) => p.getApiKey(id)!;
  const cases: Array<[key: string, action: string, tenant: string, reason: string]> = [
    ["k-alice", "delete:orders", "acme", "ALLOWED"],
    ["k-narrow", "read:orders", "acme", "ALLOWED"],
    ["k-narrow", "delete:orders", "acme", "FORBIDDEN"],
    ["k-escalate", "delete:orders", "acme", "FORBIDDEN"],
    ["k-escalate", "read:orders", "acme", "ALLOWED"],
    ["k-expired", "read:orders", "acme", "EXPIRED"],
    ["k-future", "read:orders", "acme", "ALLOWED"],
    ["k-revoked", "read:orders", "acme", "REVOKED"],
    ["k-tenant", "read:orders", "acme", "WRONG_TENANT"],
    ["k-tenant", "read:orders", "globex", "ALLOWED"],
    ["k-orphan", "read:orders", "acme", "REVOKED"],
  ];
  it.each(cases)("%s %s in %s -> %s", (id, action, tenant, reason) => {
    expect(p.decideForKey(k(id), action, tenant, NOW).reason).toBe(reason);
  });

  it("finds keys by hash and names the key in the principal", () => {
    const found = p.getApiKeyByHash("hash-k-narrow")!;
    expect(found.id).toBe("k-narrow");
    const d = p.decideForKey(found, "read:orders", "acme", NOW);
    expect(d.principal).toMatchObject({ kind: "api_key", keyId: "k-narrow", userId: "alice", roles: ["WRITE"] });
  });
});

describe("Policy mutations", () => {
  it("a binding change takes effect on the next decision", () => {
    const p = fixture();
    expect(p.decideForUser("alice", "read:x", "globex").reason).toBe("WRONG_TENANT");
    p.setBindings("alice", [bind("alice", "acme", "WRITE"), bind("alice", "globex", "READ")]);
    expect(p.decideForUser("alice", "read:x", "globex").reason).toBe("ALLOWED");
    p.setBindings("alice", []);
    expect(p.decideForUser("alice", "read:x", "acme").reason).toBe("WRONG_TENANT");
    expect(p.sizes().bindings).toBe(5);
  });

  it("a role change recompiles matchers of every holder", () => {
    const p = fixture();
    expect(p.decideForUser("bob", "write:orders", "acme").reason).toBe("FORBIDDEN");
    p.putRole({ name: "order-reader", permissions: ["*:orders"], description: "", builtin: false });
    expect(p.decideForUser("bob", "write:orders", "acme").reason).toBe("ALLOWED");
    p.removeRole("order-reader");
    expect(p.decideForUser("bob", "read:orders", "acme").reason).toBe("WRONG_TENANT");
  });

  it("revoking or rotating a key is seen at once", () => {
    const p = fixture();
    p.putApiKey({ ...p.getApiKey("k-alice")!, revokedAtMs: NOW });
    expect(p.decideForKey(p.getApiKeyByHash("hash-k-alice")!, "read:x", "acme", NOW).reason).toBe("REVOKED");
    p.putApiKey({ ...p.getApiKey("k-narrow")!, secretHash: "new-hash" });
    expect(p.getApiKeyByHash("hash-k-narrow")).toBeUndefined();
    expect(p.getApiKeyByHash("new-hash")?.id).toBe("k-narrow");
    p.removeApiKey("k-narrow");
    expect(p.getApiKeyByHash("new-hash")).toBeUndefined();
  });

  it("disabling a user or tenant denies at once", () => {
    const p = fixture();
    p.putUser({ ...p.getUser("alice")!, disabled: true });
    expect(p.decideForUser("alice", "read:x", "acme").reason).toBe("DISABLED");
    p.putTenant({ id: "globex", displayName: "", disabled: true, createdAtMs: 0 });
    expect(p.decideForUser("bob", "read:x", "globex").reason).toBe("UNKNOWN_TENANT");
    p.removeTenant("acme");
    expect(p.decideForUser("bob", "read:orders", "acme").reason).toBe("UNKNOWN_TENANT");
  });

  it("renaming a user moves the username index", () => {
    const p = fixture();
    p.putUser({ ...p.getUser("alice")!, username: "alicia" });
    expect(p.getUserByUsername("alice")).toBeUndefined();
    expect(p.getUserByUsername("alicia")?.id).toBe("alice");
    p.removeUser("alice");
    expect(p.getUserByUsername("alicia")).toBeUndefined();
    expect(p.decideForUser("alice", "read:x", "acme").reason).toBe("UNKNOWN_CREDENTIAL");
  });

  it("never lets SUPER be held through a binding", () => {
    const p = fixture();
    p.setBindings("alice", [bind("alice", "acme", "SUPER")]);
    expect(p.decideForUser("alice", "read:x", "acme").reason).toBe("WRONG_TENANT");
  });
});

describe("Policy.fromDataInSlices", () => {
  const options: PolicyOptions = { adminOverride: false, adminRole: "ADMIN" };
  const many = (n: number): PolicyData => ({
    version: 9,
    tenants: [{ id: "acme", displayName: "", disabled: false, createdAtMs: 0 }],
    users: Array.from({ length: 50 }, (_, i) => user(`u${i}`)),
    roles: [{ name: "READ", permissions: ["read:*"], description: "", builtin: true }],
    bindings: Array.from({ length: 50 }, (_, i) => bind(`u${i}`, "acme", "READ")),
    apiKeys: Array.from({ length: n }, (_, i) => key(`k${i}`, `u${i % 50}`)),
  });

  it("builds the same policy as fromData, handing control back between slices of records", async () => {
    const data = many(25_000);
    let pauses = 0;
    const sliced = await Policy.fromDataInSlices(data, options, async () => {
      pauses++;
    }, 10_000);
    const whole = Policy.fromData(data, options);
    expect(sliced.sizes()).toEqual(whole.sizes());
    expect(sliced.version).toBe(9);
    // 25,000 keys and about 100 other records: at least one pause per 10,000 records.
    expect(pauses).toBeGreaterThanOrEqual(2);
    for (const id of ["k0", "k12345", "k24999"]) {
      expect(sliced.decideForKey(sliced.getApiKeyByHash(`hash-${id}`)!, "read:orders", "acme", NOW)).toEqual(whole.decideForKey(whole.getApiKeyByHash(`hash-${id}`)!, "read:orders", "acme", NOW));
    }
  });

  it("does not pause for a small policy", async () => {
    let pauses = 0;
    await Policy.fromDataInSlices(many(100), options, async () => {
      pauses++;
    }, 10_000);
    expect(pauses).toBe(0);
  });
});
