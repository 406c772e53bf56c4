/**
 * The return_to allow list: a sign-in sends the browser back only to a URL whose scheme, host and
 * port equal an allowed entry's and whose path starts with that entry's path, so that Verdict is
 * never an open redirect.
 */

/** Backslashes, control characters and whitespace. */
function unsafe(ch: string): boolean {
  const code = ch.charCodeAt(0);
  return ch === "\\" || code <= 0x20 || code === 0x7f;
}

/**
 * The normalised URL to redirect to when `candidate` is allowed by one of `allowed` (absolute
 * URLs without query or fragment, as the configuration stores them), otherwise undefined.
 * Refused before any parsing: backslashes, control characters and whitespace (browsers read
 * `https:\\evil.com` or a tab differently from URL parsers), anything not starting with http(s)://
 * (`//evil.com`, `/path`), and credentials in the authority (`https://good.com@evil.com`).
 */
export function allowedReturnUrl(candidate: string, allowed: readonly string[]): string | undefined {
  if (candidate.length > 2048 || [...candidate].some(unsafe) || !/^https?:\/\/[^/]/i.test(candidate)) return undefined;
  let url: URL;
  try {
    url = new URL(candidate);
  } catch {
    return undefined;
  }
  if (url.username !== "" || url.password !== "") return undefined;
  for (const entry of allowed) {
    const base = new URL(entry);
    if (url.protocol !== base.protocol || url.host !== base.host) continue;
    const prefix = base.pathname;
    const inside = url.pathname === prefix || url.pathname.startsWith(prefix.endsWith("/") ? prefix : `${prefix}/`);
    if (inside) return url.href;
  }
  return undefined;
}
