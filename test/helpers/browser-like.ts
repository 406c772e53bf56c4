/**
 * A small browser stand-in for HTTP sign-in flows: a cookie jar (by host name, like browsers,
 * with paths and Max-Age=0 deletion), manual redirects, and posting the first form of a page.
 */
import { parseSetCookie } from "cookie";

interface StoredCookie {
  readonly value: string;
  readonly path: string;
}

/** A response with its URL and body text. */
export interface Page {
  readonly url: string;
  readonly status: number;
  readonly headers: Headers;
  readonly body: string;
}

/** A browser stand-in. */
export class BrowserLike {
  private readonly jar = new Map<string, Map<string, StoredCookie>>();

  /** The cookie `name` held for `url`'s host, or undefined. */
  cookie(url: string, name: string): string | undefined {
    return this.jar.get(new URL(url).hostname)?.get(name)?.value;
  }

  /** Forgets cookie `name` for `url`'s host. */
  dropCookie(url: string, name: string): void {
    this.jar.get(new URL(url).hostname)?.delete(name);
  }

  /** Forgets the cookies of `url`'s host whose names match. */
  dropCookies(url: string, match: (name: string) => boolean): void {
    const cookies = this.jar.get(new URL(url).hostname);
    for (const name of [...(cookies?.keys() ?? [])]) if (match(name)) cookies!.delete(name);
  }

  /** Sets a cookie by hand. */
  setCookie(url: string, name: string, value: string, path = "/"): void {
    const host = new URL(url).hostname;
    if (!this.jar.has(host)) this.jar.set(host, new Map());
    this.jar.get(host)!.set(name, { value, path });
  }

  private cookieHeader(url: URL): string {
    const cookies = this.jar.get(url.hostname);
    if (!cookies) return "";
    return [...cookies].filter(([, c]) => url.pathname.startsWith(c.path)).map(([n, c]) => `${n}=${c.value}`).join("; ");
  }

  private remember(url: URL, headers: Headers): void {
    for (const line of headers.getSetCookie()) {
      const c = parseSetCookie(line);
      const host = url.hostname;
      if (!this.jar.has(host)) this.jar.set(host, new Map());
      const cookies = this.jar.get(host)!;
      if (c.maxAge === 0 || c.value === "" || c.value === undefined) cookies.delete(c.name);
      else cookies.set(c.name, { value: c.value, path: c.path ?? "/" });
    }
  }

  /** One request, no redirect followed; cookies sent and remembered. */
  async request(url: string, init: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<Page> {
    const u = new URL(url);
    const headers: Record<string, string> = { ...init.headers };
    const cookie = this.cookieHeader(u);
    if (cookie !== "") headers.cookie = cookie;
    const response = await fetch(u, { method: init.method ?? "GET", body: init.body, headers, redirect: "manual" });
    this.remember(u, response.headers);
    return { url, status: response.status, headers: response.headers, body: await response.text() };
  }

  /**
   * Follows redirects from `url` until a page that is not a redirect, or until the next location
   * satisfies `stopBefore` (that location is returned unvisited as `stoppedAt`).
   */
  async follow(url: string, stopBefore: (location: string) => boolean = () => false, init?: { method?: string; body?: string; headers?: Record<string, string> }): Promise<{ page: Page; stoppedAt?: string }> {
    let page = await this.request(url, init);
    for (let hops = 0; hops < 20; hops++) {
      const location = page.headers.get("location");
      if (page.status < 300 || page.status >= 400 || location === null) return { page };
      const next = new URL(location, page.url).href;
      if (stopBefore(next)) return { page, stoppedAt: next };
      page = await this.request(next);
    }
    throw new Error(`too many redirects from ${url}`);
  }

  /** Posts the first form of `page` with its hidden inputs plus `fields`, following redirects. */
  async submitForm(page: Page, fields: Record<string, string>, stopBefore?: (location: string) => boolean): Promise<{ page: Page; stoppedAt?: string }> {
    const form = /<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/i.exec(page.body);
    if (!form) throw new Error(`no form on ${page.url} (HTTP ${page.status}): ${page.body.slice(0, 300)}`);
    const body = new URLSearchParams();
    for (const input of form[2].matchAll(/<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"/gi)) body.set(input[1], input[2]);
    for (const [k, v] of Object.entries(fields)) body.set(k, v);
    const action = new URL(form[1].replace(/&amp;/g, "&"), page.url).href;
    return this.follow(action, stopBefore, { method: "POST", body: body.toString(), headers: { "content-type": "application/x-www-form-urlencoded" } });
  }
}
