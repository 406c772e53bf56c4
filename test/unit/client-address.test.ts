import { describe, expect, it } from "vitest";
import { createClientAddress, createClientBucket } from "../../src/api/client-address.js";
import type { CallContext } from "../../src/api/rpc.js";
import { ConfigError, loadConfig } from "../../src/config/config.js";
import { parseCidrList } from "../../src/config/cidr-list.js";

const ctx = (peer: string, forwarded?: string): CallContext => ({ peer, header: (name) => (name === "x-forwarded-for" ? forwarded : undefined) });

describe("client address", () => {
  const behind = createClientAddress(parseCidrList("T", "10.0.0.0/8, ::1"));

  it("is the socket address when no proxy is trusted, whatever X-Forwarded-For says", () => {
    const direct = createClientAddress([]);
    expect(direct(ctx("192.0.2.7", "198.51.100.1"))).toBe("192.0.2.7");
    expect(direct(ctx("::ffff:192.0.2.7"))).toBe("192.0.2.7");
  });

  it("ignores X-Forwarded-For from a peer that is not a trusted proxy", () => {
    expect(behind(ctx("192.0.2.7", "198.51.100.1"))).toBe("192.0.2.7");
  });

  it("takes the last address a trusted proxy did not add", () => {
    expect(behind(ctx("10.1.2.3", "198.51.100.1"))).toBe("198.51.100.1");
    expect(behind(ctx("::1", "203.0.113.9, 198.51.100.1, 10.0.0.5"))).toBe("198.51.100.1");
    expect(behind(ctx("::ffff:10.1.2.3", "::ffff:198.51.100.1"))).toBe("198.51.100.1");
    // Only proxies all the way: the first one.
    expect(behind(ctx("10.1.2.3", "10.9.9.9, 10.0.0.5"))).toBe("10.9.9.9");
  });

  it("stops at something that is not an address, and keeps the socket without the header", () => {
    expect(behind(ctx("10.1.2.3", "198.51.100.1, garbage"))).toBe("10.1.2.3");
    expect(behind(ctx("10.1.2.3", "garbage, 10.0.0.5"))).toBe("10.0.0.5");
    expect(behind(ctx("10.1.2.3"))).toBe("10.1.2.3");
  });
});

describe("client bucket", () => {
  it("is the client address in its bucket: an IPv6 client by its prefix, from the socket or a trusted proxy's header", () => {
    const bucket = createClientBucket(parseCidrList("T", "10.0.0.0/8"), 64);
    expect(bucket(ctx("2001:db8:1:2::7"))).toBe("2001:db8:1:2::/64");
    expect(bucket(ctx("10.1.2.3", "2001:db8:1:3:a:b:c:d"))).toBe("2001:db8:1:3::/64");
    expect(bucket(ctx("192.0.2.7", "2001:db8:1:3:a:b:c:d"))).toBe("192.0.2.7");
    expect(bucket(ctx("::ffff:c000:207"))).toBe("192.0.2.7");
    expect(createClientBucket([], 128)(ctx("2001:db8::7"))).toBe("2001:db8::7/128");
    expect(() => createClientBucket([], 129)).toThrow(RangeError);
  });
});

describe("VERDICT_TRUSTED_PROXIES", () => {
  it("reads addresses and CIDR ranges", () => {
    expect(loadConfig({}).trustedProxies).toEqual([]);
    expect(loadConfig({ VERDICT_TRUSTED_PROXIES: " 10.0.0.0/8,192.168.1.7 , fd00::/8" }).trustedProxies).toEqual([
      { address: "10.0.0.0", prefix: 8, family: "ipv4" },
      { address: "192.168.1.7", prefix: 32, family: "ipv4" },
      { address: "fd00::", prefix: 8, family: "ipv6" },
    ]);
  });

  it.each(["10.0.0.0/33", "10.0.0/8", "example.com", "::1/129", "10.0.0.0/8/1", "10.0.0.0/x"])("refuses %s", (value) => {
    expect(() => loadConfig({ VERDICT_TRUSTED_PROXIES: value })).toThrow(ConfigError);
    expect(() => loadConfig({ VERDICT_TRUSTED_PROXIES: value })).toThrow(/VERDICT_TRUSTED_PROXIES/);
  });
});
