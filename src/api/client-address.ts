/**
 * The client address a call comes from, for the per-address limits: the address of the socket,
 * or, when that socket belongs to a trusted proxy (VERDICT_TRUSTED_PROXIES), the last address in
 * X-Forwarded-For that is not itself a trusted proxy. A client can prepend anything to the header,
 * but only what trusted proxies appended is believed. The limits count it by its bucket
 * (core/address-bucket.ts: an IPv6 client by its /64, VERDICT_IPV6_LIMIT_PREFIX).
 */
import { BlockList, isIP } from "node:net";
import type { Cidr } from "../config/config.js";
import { addressBucket } from "../core/address-bucket.js";
import type { CallContext } from "./rpc.js";

/** "::ffff:10.0.0.1" (an IPv4 client on a dual-stack socket) is 10.0.0.1. */
function plain(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return mapped ? mapped[1] : address;
}

/** Creates the function giving a call's client address, trusting X-Forwarded-For only from `trustedProxies`. */
export function createClientAddress(trustedProxies: readonly Cidr[]): (ctx: CallContext) => string {
  const trusted = new BlockList();
  for (const range of trustedProxies) trusted.addSubnet(range.address, range.prefix, range.family);
  const isTrusted = (address: string) => {
    const version = isIP(address);
    return version !== 0 && trusted.check(address, version === 4 ? "ipv4" : "ipv6");
  };
  return (ctx) => {
    const socket = plain(ctx.peer);
    if (trustedProxies.length === 0 || !isTrusted(socket)) return socket;
    const forwarded = ctx.header("x-forwarded-for");
    if (forwarded === undefined) return socket;
    let client = socket;
    const hops = forwarded.split(",");
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = plain(hops[i].trim());
      // Something that is not an address: stop at the last hop a trusted proxy vouched for.
      if (isIP(hop) === 0) break;
      client = hop;
      if (!isTrusted(hop)) break;
    }
    return client;
  };
}

/**
 * Creates the function giving what the per-address limits (login, sign-in starts) count a call
 * against: its client address (createClientAddress) in its bucket, an IPv6 one cut to `ipv6Prefix` bits.
 */
export function createClientBucket(trustedProxies: readonly Cidr[], ipv6Prefix: number): (ctx: CallContext) => string {
  addressBucket("::", ipv6Prefix); // a bad prefix throws now, not at the first IPv6 call
  const clientAddress = createClientAddress(trustedProxies);
  return (ctx) => addressBucket(clientAddress(ctx), ipv6Prefix);
}
