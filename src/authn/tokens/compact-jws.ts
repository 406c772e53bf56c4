/**
 * The shape of a compact JWS (`header.payload.signature`), checked without splitting the string.
 */

/**
 * True when `token` holds exactly two dots, so `indexOf(".")` and `lastIndexOf(".")` are the ends
 * of the header and the payload. Segments may be empty: what they hold is the parser's business.
 * Allocates nothing (the Check path calls it for every token credential).
 */
export function isCompactJws(token: string): boolean {
  const first = token.indexOf(".");
  if (first < 0) return false;
  const second = token.indexOf(".", first + 1);
  return second >= 0 && token.indexOf(".", second + 1) < 0;
}
