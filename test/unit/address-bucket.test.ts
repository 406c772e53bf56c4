import { describe, expect, it } from "vitest";
import { addressBucket } from "../../src/core/address-bucket.js";
import { ConfigError, loadConfig } from "../../src/config/config.js";

describe("addressBucket: what per-address limits count a client address as", () => {
  it.each([
    // IPv4 as it is.
    ["203.0.113.7", "203.0.113.7"],
    ["10.0.0.1", "10.0.0.1"],
    // IPv4-mapped IPv6, whatever the spelling: the IPv4 address.
    ["::ffff:203.0.113.7", "203.0.113.7"],
    ["::FFFF:203.0.113.7", "203.0.113.7"],
    ["0:0:0:0:0:ffff:203.0.113.7", "203.0.113.7"],
    ["::ffff:cb00:7107", "203.0.113.7"],
    ["0000:0000:0000:0000:0000:FFFF:CB00:7107", "203.0.113.7"],
    // IPv6: the /64, whatever the spelling (full, compressed, upper case, leading zeros).
    ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
    ["2001:0db8:0001:0002:0003:0004:0005:0006", "2001:db8:1:2::/64"],
    ["2001:DB8:1:2::9", "2001:db8:1:2::/64"],
    ["2001:db8:1:2::", "2001:db8:1:2::/64"],
    ["2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"],
    ["2001:db8:1:3::1", "2001:db8:1:3::/64"],
    ["2001:0:0:1::1", "2001:0:0:1::/64"],
    ["2001:db8::1.2.3.4", "2001:db8::/64"],
    ["64:ff9b::203.0.113.7", "64:ff9b::/64"],
    ["::1", "::/64"],
    ["::", "::/64"],
    ["1:2:3:4:5:6:7::", "1:2:3:4::/64"],
    // A zone id names the interface, not the client.
    ["fe80::1%eth0", "fe80::/64"],
    ["fe80::2%25", "fe80::/64"],
    ["FE80::abcd:1%7", "fe80::/64"],
  ])("%s counts as %s", (address, bucket) => {
    expect(addressBucket(address, 64)).toBe(bucket);
  });

  it.each([
    "",
    "unknown",
    " 10.0.0.1",
    "10.0.0.1 ",
    "1.2.3.256",
    "01.2.3.4",
    "1.2.3",
    "2001:db8::1::2",
    "2001:db8:1:2:3:4:5:6:7",
    "1::2:3:4:5:6:7:8",
    "12345::",
    "2001:db8::g",
    ":2001:db8::1",
    "2001:db8::1:",
    "[2001:db8::1]",
    "::ffff:1.2.3",
    "::ffff:01.2.3.4",
    "1:2:3:4:5:6:7:1.2.3.4",
    "%eth0",
    "example.com",
  ])("leaves %j, which is no IP address, as it is", (garbage) => {
    expect(addressBucket(garbage, 64)).toBe(garbage);
  });

  it("cuts IPv6 addresses at the prefix it is given", () => {
    expect(addressBucket("2001:db8:1:2::1", 48)).toBe("2001:db8:1::/48");
    expect(addressBucket("2001:db8:1:ffff::1", 48)).toBe("2001:db8:1::/48");
    expect(addressBucket("2001:db8:1:2ff::1", 56)).toBe("2001:db8:1:200::/56");
    expect(addressBucket("2001:db8:1:2f::1", 60)).toBe("2001:db8:1:20::/60");
    expect(addressBucket("2001:db8:0:0:0:0:0:0001", 128)).toBe("2001:db8::1/128");
    expect(addressBucket("2001:DB8::1", 128)).toBe("2001:db8::1/128");
    expect(addressBucket("2001:db8::1", 0)).toBe("::/0");
    // IPv4 is never cut.
    expect(addressBucket("203.0.113.7", 48)).toBe("203.0.113.7");
    expect(addressBucket("::ffff:203.0.113.7", 128)).toBe("203.0.113.7");
  });

  it("puts every address of one /64 into one bucket, and addresses of different /64s apart", () => {
    const buckets = new Set<string>();
    for (let i = 0; i < 1000; i++) buckets.add(addressBucket(`2001:db8:aa:bb:${(i * 7919).toString(16).slice(-4)}:${i.toString(16)}::${i % 3}`, 64));
    expect([...buckets]).toEqual(["2001:db8:aa:bb::/64"]);
    expect(addressBucket("2001:db8:aa:bc::1", 64)).not.toBe(addressBucket("2001:db8:aa:bb::1", 64));
  });

  it.each([-1, 1.5, 129, Number.NaN])("refuses the prefix %s", (prefix) => {
    expect(() => addressBucket("2001:db8::1", prefix)).toThrow(RangeError);
  });
});

describe("VERDICT_IPV6_LIMIT_PREFIX", () => {
  it("is 64 unless set, and takes 48 to 128", () => {
    expect(loadConfig({}).ipv6LimitPrefix).toBe(64);
    expect(loadConfig({ VERDICT_IPV6_LIMIT_PREFIX: "48" }).ipv6LimitPrefix).toBe(48);
    expect(loadConfig({ VERDICT_IPV6_LIMIT_PREFIX: "128" }).ipv6LimitPrefix).toBe(128);
  });

  it.each(["47", "129", "0", "64.5", "/64", "sixty-four"])("refuses %s", (value) => {
    expect(() => loadConfig({ VERDICT_IPV6_LIMIT_PREFIX: value })).toThrow(ConfigError);
    expect(() => loadConfig({ VERDICT_IPV6_LIMIT_PREFIX: value })).toThrow(/VERDICT_IPV6_LIMIT_PREFIX/);
  });
});
