/**
 * Refusing cross-site requests to the routes that act on the browser's cookies (POST
 * /oauth2/refresh and /oauth2/logout). SameSite keeps the cookies off requests from other sites;
 * this check also refuses pages of the same site on another origin (a sibling subdomain, another
 * port) that are not trusted, as Go's net/http CrossOriginProtection does:
 *
 * - `Sec-Fetch-Site: same-origin` (or `none`, the person's own navigation): accepted;
 * - else an `Origin` header: accepted only when it is one of the trusted origins (Verdict's own,
 *   from VERDICT_PUBLIC_URL, and those VERDICT_CORS_ORIGINS lets send credentials); `null` never;
 * - else `Sec-Fetch-Site` saying `cross-site` or `same-site`: refused;
 * - neither header: not a browser (curl, a server), which sends no cookie a page chose for it:
 *   accepted.
 */

/** The two headers the check reads (undefined when absent). */
export interface RequestOriginHeaders {
  readonly origin: string | undefined;
  readonly secFetchSite: string | undefined;
}

/** True when a request with these headers may act on the browser's cookies. */
export type OriginCheck = (headers: RequestOriginHeaders) => boolean;

/** The check trusting exactly `origins` (serialized as browsers send them: scheme://host[:port]). */
export function createOriginCheck(origins: readonly string[]): OriginCheck {
  const trusted = new Set(origins);
  return ({ origin, secFetchSite }) => {
    if (secFetchSite === "same-origin" || secFetchSite === "none") return true;
    if (origin !== undefined) return trusted.has(origin);
    return secFetchSite === undefined;
  };
}

/**
 * The origins trusted for the cookie routes: the origin of VERDICT_PUBLIC_URL ("" when unset), and
 * the CORS origins when VERDICT_CORS_ALLOW_CREDENTIALS lets their pages send cookies ("*" is never
 * configured with credentials).
 */
export function trustedOrigins(publicUrl: string, cors: { readonly origins: readonly string[]; readonly allowCredentials: boolean }): string[] {
  const own = publicUrl === "" ? [] : [new URL(publicUrl).origin];
  return [...own, ...(cors.allowCredentials ? cors.origins : [])];
}
