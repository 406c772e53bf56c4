import { describe, expect, it } from "vitest";
import { GrantSyntaxError, parseGrant } from "../../src/core/grant.js";

describe("parseGrant", () => {
  it.each([
    ["GRANT READ, WRITE TO alice", { op: "grant", roles: ["READ", "WRITE"], user: "alice" }],
    ["grant READ to alice", { op: "grant", roles: ["READ"], user: "alice" }],
    ["  Grant  ADMIN ,READ   To bob@example.com ;", { op: "grant", roles: ["ADMIN", "READ"], user: "bob@example.com" }],
    ["REVOKE WRITE FROM alice", { op: "revoke", roles: ["WRITE"], user: "alice" }],
    ["revoke write, Admin from alice", { op: "revoke", roles: ["WRITE", "ADMIN"], user: "alice" }],
    ["GRANT READ, READ TO alice", { op: "grant", roles: ["READ"], user: "alice" }],
    ["GRANT order-reader TO svc.billing", { op: "grant", roles: ["order-reader"], user: "svc.billing" }],
  ])("parses %j", (statement, expected) => {
    expect(parseGrant(statement)).toEqual(expected);
  });

  it.each([
    ["", "expected"],
    ["GRANT TO alice", "expected"],
    ["GRANT READ FROM alice", 'GRANT takes "TO'],
    ["REVOKE READ TO alice", 'REVOKE takes "FROM'],
    ["GRANT READ,, WRITE TO alice", "invalid role name"],
    ["GRANT READ TO alice bob", "expected"],
    ["GRANT RE AD TO alice", "invalid role name"],
    ["DROP TABLE users", "expected"],
    ["GRANT READ TO " + "a".repeat(5000), "4096"],
  ])("rejects %j", (statement, fragment) => {
    expect(() => parseGrant(statement)).toThrow(GrantSyntaxError);
    expect(() => parseGrant(statement)).toThrow(fragment);
  });
});
