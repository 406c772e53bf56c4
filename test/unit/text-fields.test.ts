/**
 * The edge validation of text fields: every string of a request, at any depth (nested messages,
 * repeated fields, map keys and values), is checked for control characters, and the problem names
 * the field. Admin and auth requests are flat today; the envoy CheckRequest exercises the rest.
 */
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { CheckRequestSchema } from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import { CreateApiKeyRequestSchema, PutRoleRequestSchema } from "../../gen/verdict/v1/admin_pb.js";
import { controlCharacterProblem, requestTextProblem } from "../../src/api/text-fields.js";

describe("controlCharacterProblem", () => {
  it.each(["\u0000", "\t", "\n", "\r", "\u001b", "\u007f", "\u0085", "\u009f"])("refuses U+%s", (c) => {
    expect(controlCharacterProblem("name", `a${c}b`)).toBe(`name must not contain control characters (found U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")} at position 1)`);
  });
  it.each(["", "plain", "ünïcødé 名前", "emoji 🙂", "a\u00a0b", "\u2028"])("accepts %j", (text) => {
    expect(controlCharacterProblem("name", text)).toBeUndefined();
  });
});

describe("requestTextProblem", () => {
  it("names a scalar field, and an item of a repeated one by index", () => {
    expect(requestTextProblem(CreateApiKeyRequestSchema, create(CreateApiKeyRequestSchema, { name: "ci\u0000" }))).toMatch(/^name must not/);
    expect(requestTextProblem(PutRoleRequestSchema, create(PutRoleRequestSchema, { name: "r", permissions: ["read:x", "read:\u0007"] }))).toMatch(/^permissions\[1\] must not/);
    expect(requestTextProblem(PutRoleRequestSchema, create(PutRoleRequestSchema, { name: "r", permissions: ["read:x"], description: "fine" }))).toBeUndefined();
  });

  it("walks nested messages and map keys and values", () => {
    const request = (headers: Record<string, string>) =>
      create(CheckRequestSchema, { attributes: { request: { http: { method: "GET", path: "/x", headers } } } });
    expect(requestTextProblem(CheckRequestSchema, request({ "x-a": "fine" }))).toBeUndefined();
    expect(requestTextProblem(CheckRequestSchema, request({ "x-a": "b\u0000d" }))).toMatch(/^attributes\.request\.http\.headers\[x-a\] must not/);
    expect(requestTextProblem(CheckRequestSchema, request({ "x\u0001": "v" }))).toMatch(/^attributes\.request\.http\.headers key must not/);
    const path = create(CheckRequestSchema, { attributes: { request: { http: { path: "/a\u001fb" } } } });
    expect(requestTextProblem(CheckRequestSchema, path)).toMatch(/^attributes\.request\.http\.path must not .*U\+001F at position 2/);
  });
});
