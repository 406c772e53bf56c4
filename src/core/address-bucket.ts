/**
 * What every per-client-address limit counts an address as. A subscriber is normally given a whole
 * IPv6 /64 (often a /56 or a /48) and may use any address in it, so counting each IPv6 address
 * alone would hand one client 2^64 budgets: an IPv6 address counts as its network of the first
 * `ipv6Prefix` bits. An IPv4 address counts as itself, and so does an IPv4-mapped IPv6 address
 * (`::ffff:a.b.c.d`, however it is spelled: a dual-stack socket reports IPv4 clients that way).
 * Pure: no parsing library, so that the decision core may use it.
 */

/** VERDICT_IPV6_LIMIT_PREFIX's default: the /64 a subscriber normally holds. */
export const DEFAULT_IPV6_LIMIT_PREFIX = 64;

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const GROUP = /^[0-9a-f]{1,4}$/i;

/** The 32 bits of a dotted IPv4 address as two 16-bit groups, or undefined. */
function ipv4Groups(text: string): [number, number] | undefined {
  const m = IPV4.exec(text);
  if (m === null) return undefined;
  return [(Number(m[1]) << 8) | Number(m[2]), (Number(m[3]) << 8) | Number(m[4])];
}

/** The groups of one side of "::" (a trailing dotted IPv4 counts as two), or undefined. */
function sideGroups(side: string, last: boolean): number[] | undefined {
  if (side === "") return [];
  const parts = side.split(":");
  const groups: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (GROUP.test(part)) {
      groups.push(parseInt(part, 16));
      continue;
    }
    const v4 = last && i === parts.length - 1 ? ipv4Groups(part) : undefined;
    if (v4 === undefined) return undefined;
    groups.push(...v4);
  }
  return groups;
}

/** The eight 16-bit groups of an IPv6 address (without zone id), or undefined when it is not one. */
function ipv6Groups(text: string): number[] | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  if (halves.length === 1) {
    const groups = sideGroups(text, true);
    return groups?.length === 8 ? groups : undefined;
  }
  const head = sideGroups(halves[0], false);
  const tail = sideGroups(halves[1], true);
  if (head === undefined || tail === undefined || head.length + tail.length > 7) return undefined;
  return [...head, ...Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

/** RFC 5952 text of eight groups: lower case, no leading zeros, the longest run of two or more zero groups as "::". */
function ipv6Text(groups: readonly number[]): string {
  let bestAt = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestAt = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) => groups.slice(from, to).map((g) => g.toString(16)).join(":");
  return bestAt < 0 ? hex(0, 8) : `${hex(0, bestAt)}::${hex(bestAt + bestLength, 8)}`;
}

/**
 * The bucket per-address limits count `address` in: an IPv4 address as it is; an IPv4-mapped IPv6
 * address as its IPv4 address; any other IPv6 address (full or compressed, any case, a zone id
 * dropped) as its first `ipv6Prefix` bits in RFC 5952 form with the prefix length, such as
 * `2001:db8:1:2::/64`; anything else (no address, a name, a malformed address) as it is. Throws a
 * RangeError when `ipv6Prefix` is not a whole number from 0 to 128.
 */
export function addressBucket(address: string, ipv6Prefix: number): string {
  if (!Number.isInteger(ipv6Prefix) || ipv6Prefix < 0 || ipv6Prefix > 128) throw new RangeError(`ipv6Prefix must be a whole number from 0 to 128, got ${ipv6Prefix}`);
  if (!address.includes(":")) return address;
  const zone = address.indexOf("%");
  const groups = ipv6Groups(zone < 0 ? address : address.slice(0, zone));
  if (groups === undefined || zone === 0) return address;
  if (groups[5] === 0xffff && groups.slice(0, 5).every((g) => g === 0)) {
    return `${groups[6] >> 8}.${groups[6] & 0xff}.${groups[7] >> 8}.${groups[7] & 0xff}`;
  }
  const network = groups.map((g, i) => {
    const bits = Math.min(16, Math.max(0, ipv6Prefix - 16 * i));
    return bits === 0 ? 0 : g & (0xffff << (16 - bits)) & 0xffff;
  });
  return `${ipv6Text(network)}/${ipv6Prefix}`;
}
