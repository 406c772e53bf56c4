/**
 * Validation of identifiers: those users choose (tenant ids, usernames, role names) and those other
 * systems choose (identity providers' subjects and e-mail addresses, token ids).
 */

/** Longest username, and longest free-form name (an API key's); longer input is refused before any lookup. */
export const MAX_NAME_LENGTH = 128;

const TENANT = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const USERNAME = new RegExp(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,${MAX_NAME_LENGTH - 1}}$`);
const ROLE = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

/** Lower-case letters, digits, '-' and '_', starting with a letter or digit; 1 to 63 characters. */
export function isValidTenantId(id: string): boolean {
  return TENANT.test(id);
}

/** Letters, digits, '_', '.', '@', '-', starting with a letter or digit; 1 to 128 characters. */
export function isValidUsername(name: string): boolean {
  return USERNAME.test(name);
}

/** Letters, digits, '_', '.', '-', starting with a letter; 1 to 64 characters. */
export function isValidRoleName(name: string): boolean {
  return ROLE.test(name);
}

const MAX_EXTERNAL_ID = 255;
const UNUSABLE_EXTERNAL_ID = /^\s|\s$|[\p{Cc}\p{Cf}]/u;

/**
 * An identifier another system chose (an identity provider's subject or e-mail address, a token's
 * session or token id): 1 to 255 characters (OpenID Connect's bound for `sub`), no whitespace at
 * either end (so " " or " alice" never stands for someone), no control or invisible format
 * characters anywhere.
 */
export function isUsableExternalId(value: string): boolean {
  return value.length > 0 && value.length <= MAX_EXTERNAL_ID && !UNUSABLE_EXTERNAL_ID.test(value);
}
