/**
 * The admin commands: tenants, users, roles, bindings, grant and keys, each a thin layer over one
 * AdminService RPC with a table for people and protobuf JSON for scripts.
 */
import type { Command } from "commander";
import {
  type ApiKey,
  CreateApiKeyResponseSchema,
  CreateTenantResponseSchema,
  CreateUserResponseSchema,
  GetUserResponseSchema,
  GrantResponseSchema,
  ListApiKeysResponseSchema,
  ListRoleBindingsResponseSchema,
  ListRolesResponseSchema,
  ListTenantsResponseSchema,
  ListUsersResponseSchema,
  PutRoleResponseSchema,
  type RoleBinding,
  RotateApiKeyResponseSchema,
  type User,
  type VerdictClient,
} from "../client/index.js";
import { type CliRun, type CommandContext, commandContext, parseDuration } from "./context.js";
import { resolveCredentials } from "./connection.js";
import { CliError, EXIT } from "./exit-codes.js";
import { readSecret, readSecretFromStdin } from "./io.js";
import { formatTime, printJson, printMessage, printTable } from "./output.js";

type Action = (ctx: CommandContext, args: string[], options: Record<string, unknown>) => Promise<void>;

/** Wraps an action: the last two commander arguments are the options and the command. */
function act(run: CliRun, action: Action): (...args: unknown[]) => Promise<void> {
  return (...args) => {
    const command = args[args.length - 1] as Command;
    const options = args[args.length - 2] as Record<string, unknown>;
    return action(commandContext(run, command), args.slice(0, -2) as string[], options);
  };
}

/** Reports a mutation: a line for people, {"version": "..."} (plus extra fields) for scripts. */
function done(ctx: CommandContext, text: string, version: bigint, extra: Record<string, unknown> = {}): void {
  if (ctx.format === "json") printJson(ctx.io, { ...extra, version: version.toString() });
  else ctx.io.stdout.write(`${text} (policy version ${version})\n`);
}

const yesNo = (b: boolean) => (b ? "yes" : "no");

function userRows(users: readonly User[]): string[][] {
  return users.map((u) => [u.username, u.id, yesNo(u.disabled), yesNo(u.root), formatTime(u.createTimeUnixMs)]);
}

async function usernames(client: VerdictClient): Promise<Map<string, string>> {
  try {
    return new Map((await client.admin.listUsers({})).users.map((u) => [u.id, u.username]));
  } catch {
    return new Map();
  }
}

function bindingRows(bindings: readonly RoleBinding[], names: Map<string, string>): string[][] {
  return bindings.map((b) => [b.tenant, names.get(b.userId) ?? b.userId, b.role]);
}

function keyRows(keys: readonly ApiKey[], names: Map<string, string>): string[][] {
  return keys.map((k) => [
    k.id,
    k.name,
    names.get(k.ownerUserId) ?? k.ownerUserId,
    k.tenant || "*",
    k.permissions.join(",") || "(owner's)",
    formatTime(k.expireTimeUnixMs),
    formatTime(k.revokeTimeUnixMs),
    formatTime(k.lastUsedTimeUnixMs),
  ]);
}

const KEY_HEADERS = ["ID", "NAME", "OWNER", "TENANT", "PERMISSIONS", "EXPIRES", "REVOKED", "LAST USED"];

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** Prints a new secret alone on stdout (so `$(verdict keys create ...)` captures just it), the rest on stderr. */
function printSecret(ctx: CommandContext, what: string, key: ApiKey | undefined, secret: string): void {
  ctx.io.stderr.write(`${what} ${key?.id ?? ""} (${key?.name ?? ""}). The secret below is shown once and cannot be recovered:\n`);
  ctx.io.stdout.write(`${secret}\n`);
}

/** Adds the admin commands to `program`. */
export function addAdminCommands(program: Command, run: CliRun): void {
  const tenants = program.command("tenants").description("list, create, disable, enable and delete tenants");
  tenants
    .command("list", { isDefault: true })
    .description("list tenants")
    .action(
      act(run, (ctx) =>
        ctx.withAdmin(async (client) => {
          const res = await client.admin.listTenants({});
          if (ctx.format === "json") return printMessage(ctx.io, ListTenantsResponseSchema, res);
          printTable(ctx.io, ["ID", "NAME", "DISABLED", "CREATED"], res.tenants.map((t) => [t.id, t.displayName, yesNo(t.disabled), formatTime(t.createTimeUnixMs)]));
        }),
      ),
    );
  tenants
    .command("create <id>")
    .description("create a tenant (lower-case letters, digits, '-' and '_')")
    .option("--display-name <name>", "a name for people")
    .action(
      act(run, (ctx, [id], options) =>
        ctx.withAdmin(async (client) => {
          const res = await client.admin.createTenant({ id, displayName: (options.displayName as string | undefined) ?? "" });
          if (ctx.format === "json") return printMessage(ctx.io, CreateTenantResponseSchema, res);
          done(ctx, `created tenant ${id}`, res.version);
        }),
      ),
    );
  for (const [name, disabled] of [["disable", true], ["enable", false]] as const) {
    tenants
      .command(`${name} <id>`)
      .description(`${name} a tenant (every Check in a disabled tenant is denied)`)
      .action(act(run, (ctx, [id]) => ctx.withAdmin(async (client) => done(ctx, `${name}d tenant ${id}`, (await client.admin.setTenantDisabled({ id, disabled })).version))));
  }
  tenants
    .command("delete <id>")
    .description("delete a tenant and every role binding in it")
    .action(act(run, (ctx, [id]) => ctx.withAdmin(async (client) => done(ctx, `deleted tenant ${id}`, (await client.admin.deleteTenant({ id })).version))));

  const users = program.command("users").description("list, create, disable, enable, delete users and set passwords");
  users
    .command("list", { isDefault: true })
    .description("list users")
    .action(
      act(run, (ctx) =>
        ctx.withAdmin(async (client) => {
          const res = await client.admin.listUsers({});
          if (ctx.format === "json") return printMessage(ctx.io, ListUsersResponseSchema, res);
          printTable(ctx.io, ["USERNAME", "ID", "DISABLED", "ROOT", "CREATED"], userRows(res.users));
        }),
      ),
    );
  users
    .command("get <user>")
    .description("show a user (id or username) and its role bindings")
    .action(
      act(run, (ctx, [user]) =>
        ctx.withAdmin(async (client) => {
          const res = await client.admin.getUser({ user });
          if (ctx.format === "json") return printMessage(ctx.io, GetUserResponseSchema, res);
          printTable(ctx.io, ["USERNAME", "ID", "DISABLED", "ROOT", "CREATED"], userRows(res.user ? [res.user] : []));
          if (res.bindings.length > 0) {
            ctx.io.stdout.write("\n");
            printTable(ctx.io, ["TENANT", "USER", "ROLE"], bindingRows(res.bindings, new Map(res.user ? [[res.user.id, res.user.username]] : [])));
          }
        }),
      ),
    );
  users
    .command("create <username>")
    .description("create a user; the password is asked for (not echoed) or read from stdin")
    .option("--password-stdin", "read the password from stdin")
    .action(
      act(run, async (ctx, [username], options) => {
        const password = await readSecret(ctx.io, { fromStdin: options.passwordStdin === true, what: "password", flag: "--password-stdin", confirm: true });
        await ctx.withAdmin(async (client) => {
          const res = await client.admin.createUser({ username, password });
          if (ctx.format === "json") return printMessage(ctx.io, CreateUserResponseSchema, res);
          done(ctx, `created user ${username} (id ${res.user?.id ?? "?"})`, res.version);
        });
      }),
    );
  users
    .command("set-password [user]")
    .description("set another user's password, or your own (then your current password is asked too); every session of that user is revoked")
    .option("--password-stdin", "read the new password from stdin (your own: the current password on the first line, the new one on the second)")
    .action(
      act(run, async (ctx, [user], options) => {
        const own = user === undefined;
        const fromStdin = options.passwordStdin === true;
        let currentPassword = "";
        let newPassword: string;
        if (own && fromStdin) {
          const lines = (await readSecretFromStdin(ctx.io, "passwords")).split(/\r?\n/);
          if (lines.length !== 2 || lines.some((l) => l === "")) throw new CliError("give your current password on the first line of stdin and the new one on the second", EXIT.usage);
          [currentPassword, newPassword] = lines;
        } else {
          if (own) currentPassword = await readSecret(ctx.io, { fromStdin: false, what: "current password", flag: "--password-stdin" });
          newPassword = await readSecret(ctx.io, { fromStdin, what: "new password", flag: "--password-stdin", confirm: true });
        }
        // Your own change revokes your sessions; the one this CLI uses is kept when it is a token.
        const caller = own ? await resolveCredentials(ctx.connect).catch(() => undefined) : undefined;
        const keepCurrentSession = caller !== undefined && "token" in caller;
        await ctx.withAdmin(async (client) =>
          done(ctx, `password of ${user ?? "your user"} changed`, (await client.admin.changePassword({ user: user ?? "", newPassword, currentPassword, keepCurrentSession })).version),
        );
      }),
    );
  for (const [name, disabled] of [["disable", true], ["enable", false]] as const) {
    users
      .command(`${name} <user>`)
      .description(`${name} a user (id or username)`)
      .action(act(run, (ctx, [user]) => ctx.withAdmin(async (client) => done(ctx, `${name}d user ${user}`, (await client.admin.setUserDisabled({ user, disabled })).version))));
  }
  users
    .command("delete <user>")
    .description("delete a user with its role bindings; its API keys are revoked")
    .action(act(run, (ctx, [user]) => ctx.withAdmin(async (client) => done(ctx, `deleted user ${user}`, (await client.admin.deleteUser({ user })).version))));

  const roles = program.command("roles").description("list, define and delete roles");
  roles
    .command("list", { isDefault: true })
    .description("list roles (built-in and defined)")
    .action(
      act(run, (ctx) =>
        ctx.withAdmin(async (client) => {
          const res = await client.admin.listRoles({});
          if (ctx.format === "json") return printMessage(ctx.io, ListRolesResponseSchema, res);
          printTable(ctx.io, ["NAME", "PERMISSIONS", "BUILT-IN", "DESCRIPTION"], res.roles.map((r) => [r.name, r.permissions.join(","), yesNo(r.builtin), r.description]));
        }),
      ),
    );
  roles
    .command("put <name>")
    .description("create or replace a role")
    .requiredOption("-p, --permission <pattern>", "a permission pattern such as read:orders (repeat for more)", collect)
    .option("--description <text>", "what the role is for")
    .action(
      act(run, (ctx, [name], options) =>
        ctx.withAdmin(async (client) => {
          const res = await client.admin.putRole({ name, permissions: options.permission as string[], description: (options.description as string | undefined) ?? "" });
          if (ctx.format === "json") return printMessage(ctx.io, PutRoleResponseSchema, res);
          done(ctx, `role ${name} = ${res.role?.permissions.join(",") ?? ""}`, res.version);
        }),
      ),
    );
  roles
    .command("delete <name>")
    .description("delete a role and every binding of it")
    .action(act(run, (ctx, [name]) => ctx.withAdmin(async (client) => done(ctx, `deleted role ${name}`, (await client.admin.deleteRole({ name })).version))));

  const bindings = program.command("bindings").description("list, add and remove role bindings (a user holds a role in a tenant)");
  bindings
    .command("list", { isDefault: true })
    .description("list role bindings")
    .option("-t, --tenant <tenant>", "only this tenant's")
    .action(
      act(run, (ctx, _args, options) =>
        ctx.withAdmin(async (client) => {
          const res = await client.admin.listRoleBindings({ tenant: (options.tenant as string | undefined) ?? "" });
          if (ctx.format === "json") return printMessage(ctx.io, ListRoleBindingsResponseSchema, res);
          printTable(ctx.io, ["TENANT", "USER", "ROLE"], bindingRows(res.bindings, await usernames(client)));
        }),
      ),
    );
  for (const [name, verb] of [["add", "bind"], ["remove", "unbind"]] as const) {
    bindings
      .command(`${name} <user> <role>`)
      .description(`${verb} a role for a user in a tenant ("*": every tenant)`)
      .requiredOption("-t, --tenant <tenant>", 'the tenant, or "*" for every tenant')
      .action(
        act(run, (ctx, [user, role], options) =>
          ctx.withAdmin(async (client) => {
            const request = { tenant: options.tenant as string, user, role };
            const { version } = verb === "bind" ? await client.admin.bindRole(request) : await client.admin.unbindRole(request);
            done(ctx, `${verb === "bind" ? "bound" : "unbound"} ${role} for ${user} in ${request.tenant}`, version);
          }),
        ),
      );
  }

  program
    .command("grant <statement>")
    .description('run a statement such as "GRANT READ, WRITE TO alice" or "REVOKE WRITE FROM alice" in a tenant')
    .requiredOption("-t, --tenant <tenant>", 'the tenant, or "*" for every tenant')
    .action(
      act(run, (ctx, [statement], options) =>
        ctx.withAdmin(async (client) => {
          const res = await client.admin.grant({ tenant: options.tenant as string, statement });
          if (ctx.format === "json") return printMessage(ctx.io, GrantResponseSchema, res);
          if (res.bindings.length > 0) printTable(ctx.io, ["TENANT", "USER", "ROLE"], bindingRows(res.bindings, await usernames(client)));
          done(ctx, `${res.bindings.length} binding(s) changed`, res.version);
        }),
      ),
    );

  const keys = program.command("keys").description("create, list, revoke and rotate API keys");
  keys
    .command("create")
    .description("create an API key; its secret is printed once, alone on stdout")
    .requiredOption("-n, --name <name>", "a name for the key")
    .option("--owner <user>", "the owner (id or username; default: you)")
    .option("-p, --permission <pattern>", "narrow the key to this permission (repeat for more; default: the owner's)", collect)
    .option("-t, --tenant <tenant>", "valid in this tenant only")
    .option("--expires-in <duration>", "expire after this long (90s, 15m, 12h, 30d)", parseDuration)
    .action(
      act(run, (ctx, _args, options) =>
        ctx.withAdmin(async (client) => {
          const res = await client.admin.createApiKey({
            name: options.name as string,
            owner: (options.owner as string | undefined) ?? "",
            permissions: (options.permission as string[] | undefined) ?? [],
            tenant: (options.tenant as string | undefined) ?? "",
            expireTimeUnixMs: options.expiresIn === undefined ? 0n : BigInt(Date.now() + (options.expiresIn as number)),
          });
          if (ctx.format === "json") return printMessage(ctx.io, CreateApiKeyResponseSchema, res);
          printSecret(ctx, "created API key", res.apiKey, res.secret);
        }),
      ),
    );
  keys
    .command("list", { isDefault: true })
    .description("list API keys (yours, another owner's, or all with --owner '*')")
    .option("--owner <user>", "the owner (id or username), or * for every key")
    .action(
      act(run, (ctx, _args, options) =>
        ctx.withAdmin(async (client) => {
          const res = await client.admin.listApiKeys({ owner: (options.owner as string | undefined) ?? "" });
          if (ctx.format === "json") return printMessage(ctx.io, ListApiKeysResponseSchema, res);
          printTable(ctx.io, KEY_HEADERS, keyRows(res.apiKeys, await usernames(client)));
        }),
      ),
    );
  keys
    .command("revoke <id>")
    .description("revoke an API key at once")
    .action(act(run, (ctx, [id]) => ctx.withAdmin(async (client) => done(ctx, `revoked API key ${id}`, (await client.admin.revokeApiKey({ id })).version))));
  keys
    .command("rotate <id>")
    .description("issue a new secret for a key (same id, name and permissions); the old secret stops working")
    .action(
      act(run, (ctx, [id]) =>
        ctx.withAdmin(async (client) => {
          const res = await client.admin.rotateApiKey({ id });
          if (ctx.format === "json") return printMessage(ctx.io, RotateApiKeyResponseSchema, res);
          printSecret(ctx, "rotated API key", res.apiKey, res.secret);
        }),
      ),
    );
}
