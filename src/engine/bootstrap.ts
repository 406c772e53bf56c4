/**
 * Root bootstrap: at first start create the root user from VERDICT_ROOT_* (or with a generated
 * password shown once), keep its enabled state in line with the configuration, and switch it off
 * once a first admin exists when VERDICT_DISABLE_ROOT_AFTER_SETUP is set.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { PasswordHasher } from "../authn/password.js";
import type { Logger } from "../observability/logger.js";
import type { Actor, Store } from "../store/store.js";

const SYSTEM: Actor = { userId: "system" };

/** Root settings (from Config.root) plus the role that makes an admin. */
export interface RootSettings {
  readonly username: string;
  readonly password: string;
  readonly enabled: boolean;
  readonly disableAfterSetup: boolean;
  readonly adminRole: string;
}

/** What bootstrap did; versions of committed changes so the caller can apply them. */
export interface BootstrapResult {
  readonly versions: number[];
  /** Set only when a password was generated: the caller shows it once. */
  readonly generatedPassword?: string;
}

/** Creates or updates the root user as configured. Safe to run on every start and replica. */
export async function bootstrapRoot(store: Store, settings: RootSettings, passwords: PasswordHasher, logger: Logger): Promise<BootstrapResult> {
  const versions: number[] = [];
  let generatedPassword: string | undefined;
  let root = await store.getUserByUsername(settings.username);
  if (root && settings.password !== "") {
    logger.warn("VERDICT_ROOT_PASSWORD is set but ignored: the root user already exists and keeps its password (it applies at the first start only; 'verdict reset-root' sets a new one)", {
      username: settings.username,
    });
  }
  if (!root && settings.enabled) {
    const password = settings.password !== "" ? settings.password : randomBytes(18).toString("base64url");
    const user = { id: randomUUID(), username: settings.username, disabled: false, root: true, createdAtMs: Date.now(), externalIssuer: "", externalSubject: "" };
    try {
      const created = await store.createUser(user, await passwords.hash(password), SYSTEM);
      versions.push(created.version);
      root = created.value;
      if (settings.password === "") generatedPassword = password;
      logger.info("root user created", { username: user.username, passwordSource: settings.password === "" ? "generated" : "VERDICT_ROOT_PASSWORD" });
    } catch (error) {
      // Another replica created it first.
      root = await store.getUserByUsername(settings.username);
      if (!root) throw error;
    }
  }
  if (root && !root.root) {
    logger.warn("VERDICT_ROOT_USERNAME names an ordinary user; it is not made root", { username: settings.username });
    return { versions, generatedPassword };
  }
  if (root && !settings.enabled && !root.disabled) {
    versions.push((await store.setUserDisabled(root.id, true, SYSTEM)).version);
    logger.info("root user disabled (VERDICT_ROOT_ENABLED=false)");
  } else if (root && settings.enabled && root.disabled && (await store.getSetting("root_disabled_after_setup")) !== "true") {
    versions.push((await store.setUserDisabled(root.id, false, SYSTEM)).version);
    logger.info("root user enabled (VERDICT_ROOT_ENABLED=true)");
  }
  const v = await disableRootAfterSetup(store, settings, logger);
  if (v !== undefined) versions.push(v);
  return { versions, generatedPassword };
}

/**
 * When VERDICT_DISABLE_ROOT_AFTER_SETUP is on and an enabled non-root user holds the admin role in
 * every tenant, disables root (once; it stays off). Returns the committed version if it did.
 */
export async function disableRootAfterSetup(store: Store, settings: RootSettings, logger: Logger): Promise<number | undefined> {
  if (!settings.disableAfterSetup) return undefined;
  const root = await store.getUserByUsername(settings.username);
  if (!root || !root.root || root.disabled) return undefined;
  if ((await store.countAdmins(settings.adminRole)) === 0) return undefined;
  const { version } = await store.setUserDisabled(root.id, true, SYSTEM);
  await store.setSetting("root_disabled_after_setup", "true");
  logger.info("root user disabled: a first admin exists (VERDICT_DISABLE_ROOT_AFTER_SETUP=true)");
  return version;
}
