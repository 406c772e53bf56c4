/**
 * The four built-in permission levels, as roles that cannot be changed or deleted.
 */
import type { RoleRecord } from "./model.js";

/** Names of the built-in roles, from least to most powerful. */
export const BUILTIN_ROLE_NAMES = ["READ", "WRITE", "ADMIN", "SUPER"] as const;

/** The role held implicitly by root users in every tenant; it can never be bound to anyone. */
export const SUPER_ROLE = "SUPER";

/** READ reads, WRITE also creates, updates and deletes, ADMIN may do anything in its tenants. */
export const BUILTIN_ROLES: readonly RoleRecord[] = Object.freeze([
  { name: "READ", permissions: ["read:*"], description: "Read every resource.", builtin: true },
  {
    name: "WRITE",
    permissions: ["read:*", "write:*", "create:*", "update:*", "delete:*"],
    description: "Read, create, update and delete every resource.",
    builtin: true,
  },
  { name: "ADMIN", permissions: ["*"], description: "Every action in the tenants where it is bound, including administration.", builtin: true },
  { name: "SUPER", permissions: ["*"], description: "Every action in every tenant; held by root only.", builtin: true },
]);

/** True for READ, WRITE, ADMIN and SUPER. */
export function isBuiltinRole(name: string): boolean {
  return (BUILTIN_ROLE_NAMES as readonly string[]).includes(name);
}

/** The built-in role whose name equals `name` ignoring case (READ for "Read"), or undefined. */
export function builtinRoleIgnoringCase(name: string): string | undefined {
  const upper = name.toUpperCase();
  return BUILTIN_ROLE_NAMES.find((builtin) => builtin === upper);
}
