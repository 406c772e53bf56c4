/**
 * The client package as other services use it: `import { createVerdictClient } from "verdict/client"`
 * resolved through package.json exports, in process (TypeScript sources) over gRPC and Connect, and
 * from a separate Node process in a directory where node_modules/verdict links to this package
 * (the built dist/, types included), running the README's example service as written there.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { decodeBinaryHeader, encodeBinaryHeader } from "@connectrpc/connect";
import { Metadata, Server, ServerCredentials, type ServerUnaryCall, type sendUnaryData } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CheckResponseSchema, Code, ConnectError, DecisionService, Reason, type VerdictClient, createVerdictClient } from "verdict/client";
import { toGrpcService } from "../../src/api/rpc.js";
import { createLogger } from "../../src/observability/logger.js";
import { REPO_ROOT } from "../helpers/cli.js";
import { ROOT_PASSWORD, TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

let verdict: Awaited<ReturnType<typeof startTestVerdict>>;
let schema: string;
let secret: string;

beforeAll(async () => {
  schema = freshSchema();
  verdict = await startTestVerdict({ DATABASE_URL: TEST_DATABASE_URL }, schema);
  const admin = createVerdictClient({ url: `grpc://${verdict.grpcAddress}`, credentials: { username: "root", password: ROOT_PASSWORD } });
  try {
    await admin.admin.createTenant({ id: "acme" });
    await admin.admin.createUser({ username: "svc", password: "svc-password-123" });
    await admin.admin.grant({ tenant: "acme", statement: "GRANT READ TO svc" });
    secret = (await admin.admin.createApiKey({ name: "svc", owner: "svc" })).secret;
  } finally {
    admin.close();
  }
}, 120_000);

afterAll(async () => {
  await verdict?.close();
  if (schema) await dropSchema(schema);
});

describe.each(["grpc", "connect"] as const)("createVerdictClient over %s", (protocol) => {
  let client: VerdictClient;
  beforeAll(() => {
    const url = protocol === "grpc" ? `grpc://${verdict.grpcAddress}` : verdict.httpBase;
    client = createVerdictClient({ url, credentials: { username: "root", password: ROOT_PASSWORD } });
    expect(client.protocol).toBe(protocol);
  });
  afterAll(() => client.close());

  it("checks and batch-checks with typed answers", async () => {
    const allowed = await client.check({ credential: secret, action: "read:orders", tenant: "acme" });
    expect(allowed).toMatchObject({ allowed: true, reason: Reason.ALLOWED, principal: { username: "svc" } });
    const denied = await client.check({ credential: secret, action: "write:orders", tenant: "acme" });
    expect(denied).toMatchObject({ allowed: false, reason: Reason.FORBIDDEN });
    const batch = await client.checkBatch({ credential: secret, actions: ["read:a", "write:a"], tenant: "acme" });
    expect(batch.decisions.map((d) => d.allowed)).toEqual([true, false]);
  });

  it("calls Admin and Auth with the credentials given at creation", async () => {
    expect((await client.admin.listTenants({})).tenants.map((t) => t.id)).toEqual(["acme"]);
    const { tokens } = await client.auth.login({ username: "svc", password: "svc-password-123" });
    const asToken = await client.check({ credential: tokens!.accessToken, action: "read:orders", tenant: "acme" });
    expect(asToken.allowed).toBe(true);
  });

  it("fails with ConnectError codes: a bad caller credential is Unauthenticated, a low one PermissionDenied", async () => {
    const url = protocol === "grpc" ? `grpc://${verdict.grpcAddress}` : verdict.httpBase;
    const stranger = createVerdictClient({ url, credentials: { apiKey: "vk_not_a_key" } });
    const svc = createVerdictClient({ url, credentials: { apiKey: secret } });
    try {
      const unauthenticated = await stranger.admin.listTenants({}).catch((e: unknown) => e);
      expect(unauthenticated).toBeInstanceOf(ConnectError);
      expect((unauthenticated as ConnectError).code).toBe(Code.Unauthenticated);
      const forbidden = await svc.admin.createTenant({ id: "globex" }).catch((e: unknown) => e);
      expect((forbidden as ConnectError).code).toBe(Code.PermissionDenied);
    } finally {
      stranger.close();
      svc.close();
    }
  });

  it("sends a binary (-bin) header given base64, as connect-es's transports take it", async () => {
    const answer = await client.decision.check({ credential: secret, action: "read:orders", tenant: "acme" }, { headers: { "x-trace-bin": encodeBinaryHeader(new Uint8Array([0, 1, 0xff])) } });
    expect(answer.allowed).toBe(true);
  });
});

describe("createVerdictClient over grpc: metadata as connect-es's Headers", () => {
  let server: Server;
  let port = 0;
  let seen: unknown[] = [];

  beforeAll(async () => {
    const { definition, implementation } = toGrpcService(DecisionService, { check: () => create(CheckResponseSchema), checkBatch: () => ({}) as never }, createLogger("error", {}, () => undefined));
    server = new Server();
    server.addService(definition, {
      ...implementation,
      // What the server's handler reads, and response metadata with bytes and a repeated text key.
      check: (call: ServerUnaryCall<Buffer, unknown>, callback: sendUnaryData<unknown>) => {
        seen = call.metadata.get("x-trace-bin");
        const md = new Metadata();
        md.add("x-reply-bin", Buffer.from([9, 8, 7]));
        md.add("x-two", "a");
        md.add("x-two", "b");
        call.sendMetadata(md);
        callback(null, create(CheckResponseSchema, { message: "probe" }));
      },
    });
    port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  });
  afterAll(() => server.forceShutdown());

  it("turns a -bin header into bytes and -bin response metadata into base64, and keeps every value of a repeated key", async () => {
    const client = createVerdictClient({ url: `grpc://127.0.0.1:${port}` });
    try {
      let header = new Headers();
      const answer = await client.decision.check({}, { headers: [["x-trace-bin", encodeBinaryHeader(new Uint8Array([0, 1, 0xff]))], ["x-trace-bin", encodeBinaryHeader(new Uint8Array([2]))]], onHeader: (h) => (header = h) });
      expect(answer.message).toBe("probe");
      expect(seen.map((v) => (Buffer.isBuffer(v) ? v.toString("hex") : v))).toEqual(["0001ff", "02"]);
      expect([...decodeBinaryHeader(header.get("x-reply-bin") ?? "")]).toEqual([9, 8, 7]);
      expect(header.get("x-two")).toBe("a, b");
      // A value grpc-js refuses: a ConnectError naming the header, never the value (it may be a key).
      const refused = await client.decision.check({}, { headers: { "x-api-key": "vk_secret\u00a0" } }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(ConnectError);
      expect((refused as ConnectError).code).toBe(Code.InvalidArgument);
      expect((refused as ConnectError).message).toContain("x-api-key");
      expect((refused as ConnectError).message).not.toContain("vk_secret");
    } finally {
      client.close();
    }
  });
});

it("refuses a URL it cannot use", () => {
  expect(() => createVerdictClient({ url: "localhost:50051" })).toThrow(/unsupported scheme|not a Verdict URL/);
  expect(() => createVerdictClient({ url: "grpc://localhost" })).toThrow(/needs a port/);
});

/** The README's example service (the js block of "## The client package"), run as written. */
function readmeExampleService(): string {
  const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## The client package"));
  const block = /```js\n([\s\S]*?)```/.exec(section);
  if (!block) throw new Error("README.md has no js block under '## The client package'");
  return block[1];
}

const CONSUMER_TS = `
import { type CheckResponse, Reason, createVerdictClient } from "verdict/client";
const client = createVerdictClient({ url: "grpc://localhost:50051", credentials: { apiKey: "vk_x" } });
const answer: Promise<CheckResponse> = client.check({ credential: "c", action: "read:orders", tenant: "acme" });
const reason: Reason = Reason.FORBIDDEN;
// @ts-expect-error a CheckRequest has no field "actions"
void client.check({ actions: [] });
void answer;
void reason;
`;

describe("an outside service", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "verdict-client-consumer-"));
    mkdirSync(join(dir, "node_modules"));
    symlinkSync(REPO_ROOT, join(dir, "node_modules", "verdict"), "dir");
    writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "orders-service", private: true, type: "module" }));
    writeFileSync(join(dir, "service.mjs"), readmeExampleService());
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("runs the README's example service with the built package: 200 for an allowed key, 403 with the reason otherwise", async () => {
    const child = spawn(process.execPath, ["service.mjs"], { cwd: dir, env: { PATH: process.env.PATH, VERDICT_URL: `grpc://${verdict.grpcAddress}` }, stdio: ["ignore", "pipe", "inherit"] });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        child.stdout.setEncoding("utf8").once("data", (d: string) => resolve(Number(d.trim())));
        child.once("exit", (code) => reject(new Error(`the example service exited with ${code}`)));
      });
      const ok = await fetch(`http://127.0.0.1:${port}/orders`, { headers: { "x-api-key": secret } });
      expect([ok.status, await ok.text()]).toEqual([200, "orders\n"]);
      const no = await fetch(`http://127.0.0.1:${port}/orders`);
      expect(no.status).toBe(403);
      expect(await no.text()).toMatch(/^denied: /);
    } finally {
      child.kill();
    }
  });

  it("type-checks against the package's declared types (exports \"types\")", () => {
    writeFileSync(join(dir, "consumer.ts"), CONSUMER_TS);
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", strict: true, noEmit: true, skipLibCheck: true, types: ["node"], typeRoots: [join(REPO_ROOT, "node_modules", "@types")] },
        files: ["consumer.ts"],
      }),
    );
    const tsc = spawnSync(process.execPath, [join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"], { cwd: dir, encoding: "utf8" });
    expect(tsc.stdout + tsc.stderr).toBe("");
    expect(tsc.status).toBe(0);
  }, 60_000);
});
