/**
 * When the embedded database's thread stops, a replica fails closed instead of hanging: Check keeps
 * answering from the policy in memory, calls that need the store answer UNAVAILABLE at once, and
 * the replica still shuts down. Real server over gRPC on PGlite in memory.
 */
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/verdict/v1/admin_pb.js";
import { AuthService } from "../../gen/verdict/v1/auth_pb.js";
import { DecisionService } from "../../gen/verdict/v1/decision_pb.js";
import { Reason } from "../../gen/verdict/v1/types_pb.js";
import { createPgliteDriver } from "../../src/store/pglite.js";
import { createSqlStore } from "../../src/store/sql-store.js";
import { type TestClient, grpcClient, grpcError } from "../helpers/grpc.js";
import { ROOT_PASSWORD, startTestVerdict } from "../helpers/verdict.js";

const ROOT = { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString("base64")}` };

type Verdict = Awaited<ReturnType<typeof startTestVerdict>>;

/** `work`, or a rejection saying it still had not settled after `ms`. */
function settled<T>(work: Promise<T>, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms)));
  return Promise.race([work, hung]).finally(() => clearTimeout(timer));
}

describe("the embedded database's thread stops", () => {
  const driver = createPgliteDriver({ dataDir: "memory://" });
  let v: Verdict | undefined;
  let admin: TestClient<typeof AdminService>;
  let auth: TestClient<typeof AuthService>;
  let decision: TestClient<typeof DecisionService>;
  let key: string;
  let rootKey: Record<string, string>;

  beforeAll(async () => {
    v = await startTestVerdict({}, undefined, undefined, { store: createSqlStore(driver) });
    admin = grpcClient(AdminService, v.grpcAddress);
    auth = grpcClient(AuthService, v.grpcAddress);
    decision = grpcClient(DecisionService, v.grpcAddress);
    await admin.createTenant({ id: "acme" }, ROOT);
    await admin.createUser({ username: "alice", password: "alice-password-1" }, ROOT);
    await admin.bindRole({ tenant: "acme", user: "alice", role: "WRITE" }, ROOT);
    key = (await admin.createApiKey({ name: "k", owner: "alice" }, ROOT)).secret;
    rootKey = { "x-api-key": (await admin.createApiKey({ name: "root" }, ROOT)).secret };
    await (await driver.thread).terminate();
  }, 120_000);
  afterAll(async () => {
    for (const c of [admin, auth, decision]) c?.close();
    await v?.close();
  });

  it("Check answers from memory", async () => {
    expect((await settled(decision.check({ credential: key, action: "write:orders", tenant: "acme" }))).allowed).toBe(true);
    expect((await settled(decision.check({ credential: key, action: "admin:users", tenant: "acme" }))).reason).toBe(Reason.FORBIDDEN);
  });

  it.each([
    ["ListTenants", () => admin.listTenants({}, rootKey)],
    ["CreateApiKey", () => admin.createApiKey({ name: "k2" }, { "x-api-key": key })],
    ["CreateTenant (Basic)", () => admin.createTenant({ id: "initech" }, ROOT)],
    ["Login", () => auth.login({ username: "alice", password: "alice-password-1", tenant: "" })],
  ])("%s answers UNAVAILABLE at once", async (_, call) => {
    const err = await settled(grpcError(call()));
    expect({ code: err.code, details: err.details }).toEqual({ code: status.UNAVAILABLE, details: expect.stringContaining("unavailable") });
  });

  it("still shuts down", async () => {
    await settled(v!.close());
    v = undefined;
  });
});
