/**
 * Presets on a real server: `--print-config` of the built entry point prints the effective
 * configuration and exits without starting anything, and the enterprise preset's caller
 * requirement holds on a running replica.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DecisionService } from "../../gen/verdict/v1/decision_pb.js";
import { Reason } from "../../gen/verdict/v1/types_pb.js";
import { grpcClient } from "../helpers/grpc.js";
import { buildReplica } from "../helpers/replica-process.js";
import { TEST_DATABASE_URL, dropSchema, freshSchema, startTestVerdict } from "../helpers/verdict.js";

const run = promisify(execFile);

describe("presets: --print-config and the enterprise preset on a running replica", () => {
  let build: Awaited<ReturnType<typeof buildReplica>>;
  beforeAll(async () => {
    build = await buildReplica("presets");
  }, 120_000);
  afterAll(async () => {
  });

  it("prints the effective configuration, secrets masked, and exits 0 without listening", async () => {
    const env = { PATH: process.env.PATH ?? "", VERDICT_PRESET: "enterprise", VERDICT_LOGIN_MAX_ATTEMPTS: "5", VERDICT_ROOT_PASSWORD: "printed-nowhere-123", VERDICT_HTTP_ADDR: "127.0.0.1:1" };
    const { stdout, stderr } = await run(process.execPath, [build.main, "--print-config"], { env });
    expect(stdout).toMatch(/^VERDICT_PRESET=enterprise +# env$/m);
    expect(stdout).toMatch(/^VERDICT_CHECK_REQUIRE_CALLER=true +# preset enterprise$/m);
    expect(stdout).toMatch(/^VERDICT_LOGIN_MAX_ATTEMPTS=5 +# env$/m);
    expect(stdout).toMatch(/^VERDICT_ROOT_PASSWORD=\[redacted\] +# env$/m);
    expect(stdout).toMatch(/^VERDICT_HTTP_ADDR=\{"host":"127.0.0.1","port":1\} +# env$/m);
    expect(stdout + stderr).not.toContain("printed-nowhere-123");
    expect(stderr).not.toContain("gRPC on");
  });

  it("exits 2 naming the variable for a bad preset", async () => {
    const failed = await run(process.execPath, [build.main, "--print-config"], { env: { PATH: process.env.PATH ?? "", VERDICT_PRESET: "huge" } }).catch((e: { code: number; stderr: string }) => e);
    expect((failed as { code: number }).code).toBe(2);
    expect((failed as { stderr: string }).stderr).toContain("VERDICT_PRESET must be one of basic, saas, enterprise");
  });

  it("enterprise: a Check without the caller's own credential is denied", async () => {
    const schema = freshSchema();
    const v = await startTestVerdict({ DATABASE_URL: TEST_DATABASE_URL, VERDICT_PRESET: "enterprise" }, schema);
    const decision = grpcClient(DecisionService, v.grpcAddress);
    try {
      const answer = await decision.check({ credential: "vk_whatever", action: "read:orders", tenant: "acme" });
      expect([answer.allowed, answer.reason]).toEqual([false, Reason.UNAUTHENTICATED]);
      expect(answer.message).toContain("caller may not ask");
    } finally {
      decision.close();
      await v.close();
      await dropSchema(schema);
    }
  });
});
