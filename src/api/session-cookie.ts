/**
 * The cookies of a browser's session: written after a browser sign-in and by the refresh route
 * (HttpOnly, Secure, SameSite), read as credentials, and cleared by sign-out.
 */
import { parse, serialize } from "cookie";

/** How the session cookie is written. */
export interface SessionCookieSettings {
  readonly name: string;
  readonly secure: boolean;
  /** "" for a host-only cookie. */
  readonly domain: string;
}

/** What sets one cookie apart from the session cookie's defaults (SameSite=Lax, the settings' Domain). */
export interface CookieAttributes {
  /** Default "lax". */
  readonly sameSite?: "lax" | "strict";
  /** Host-only whatever the settings' domain (default false). */
  readonly hostOnly?: boolean;
}

/** The value of cookie `name` in a Cookie header, or "" when absent. */
export function readCookie(header: string | undefined, name: string): string {
  if (header === undefined || header === "") return "";
  return parse(header)[name] ?? "";
}

/** A Set-Cookie value for `name` on `path`: `value` for `maxAgeSeconds`, or cleared when value is "". */
export function cookieHeader(
  settings: SessionCookieSettings,
  name: string,
  path: string,
  value: string,
  maxAgeSeconds: number,
  attributes: CookieAttributes = {},
): string {
  return serialize(name, value, {
    httpOnly: true,
    secure: settings.secure,
    sameSite: attributes.sameSite ?? "lax",
    path,
    domain: settings.domain === "" || attributes.hostOnly ? undefined : settings.domain,
    maxAge: value === "" ? 0 : maxAgeSeconds,
  });
}
