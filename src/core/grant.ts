/**
 * The grant statement language: `GRANT READ, WRITE TO alice` and `REVOKE WRITE FROM alice`.
 * Keywords and the built-in level names are case-insensitive; other role names and the username
 * are taken as written.
 */
import { isBuiltinRole } from "./builtin-roles.js";

/** A parsed statement. */
export interface GrantStatement {
  readonly op: "grant" | "revoke";
  readonly roles: readonly string[];
  readonly user: string;
}

/** Thrown for a statement that does not parse; the message says what was expected. */
export class GrantSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GrantSyntaxError";
  }
}

const NAME = /^[A-Za-z0-9_.@-]{1,128}$/;
const STATEMENT = /^\s*(GRANT|REVOKE)\s+(.+?)\s+(TO|FROM)\s+(\S+)\s*;?\s*$/i;

/** Parses one statement or throws GrantSyntaxError. */
export function parseGrant(statement: string): GrantStatement {
  if (statement.length > 4096) throw new GrantSyntaxError("statement longer than 4096 characters");
  const m = STATEMENT.exec(statement);
  if (!m) throw new GrantSyntaxError('expected "GRANT <role>[, <role>...] TO <user>" or "REVOKE <role>[, <role>...] FROM <user>"');
  const op = m[1].toLowerCase() as "grant" | "revoke";
  const preposition = m[3].toLowerCase();
  if (op === "grant" && preposition !== "to") throw new GrantSyntaxError('GRANT takes "TO <user>"');
  if (op === "revoke" && preposition !== "from") throw new GrantSyntaxError('REVOKE takes "FROM <user>"');
  const roles = m[2].split(",").map((r) => {
    const role = r.trim();
    return isBuiltinRole(role.toUpperCase()) ? role.toUpperCase() : role;
  });
  for (const role of roles) {
    if (!NAME.test(role)) throw new GrantSyntaxError(`invalid role name ${JSON.stringify(role)}`);
  }
  const user = m[4];
  if (!NAME.test(user)) throw new GrantSyntaxError(`invalid user name ${JSON.stringify(user)}`);
  return { op, roles: [...new Set(roles)], user };
}
