/**
 * The session cookie: set after a browser sign-in (the session's access token, HttpOnly, Secure,
 * SameSite=Lax), read as a credential by the HTTP API, and cleared by sign-out.
 */
import { parse, serialize } from "cookie";

/** How the session cookie is written. */
export interface SessionCookieSettings {
  readonly name: string;
  readonly secure: boolean;
  /** "" for a host-only cookie. */
  readonly domain: string;
}

/** The value of cookie `name` in a Cookie header, or "" when absent. */
export function readCookie(header: string | undefined, name: string): string {
  if (header === undefined || header === "") return "";
  return parse(header)[name] ?? "";
}

/** A Set-Cookie value for `name` on `path`: `value` for `maxAgeSeconds`, or cleared when value is "". */
export function cookieHeader(settings: SessionCookieSettings, name: string, path: string, value: string, maxAgeSeconds: number): string {
  return serialize(name, value, {
    httpOnly: true,
    secure: settings.secure,
    sameSite: "lax",
    path,
    domain: settings.domain === "" ? undefined : settings.domain,
    maxAge: value === "" ? 0 : maxAgeSeconds,
  });
}
