/**
 * A comma-separated list of address ranges in CIDR notation ("10.0.0.0/8, 192.168.1.7, ::1/128");
 * an address without a prefix is the range holding only itself.
 */
import { isIP } from "node:net";
import { ConfigError } from "./setting.js";

/** One address range. */
export interface Cidr {
  readonly address: string;
  readonly prefix: number;
  readonly family: "ipv4" | "ipv6";
}

/** Parses the list in `value` of variable `name`; throws ConfigError naming the bad entry. */
export function parseCidrList(name: string, value: string): readonly Cidr[] {
  return Object.freeze(
    value
      .split(",")
      .map((entry) => entry.trim())
      .filter((entry) => entry !== "")
      .map((entry) => {
        const [address, prefixText, extra] = entry.split("/");
        const version = isIP(address);
        const max = version === 4 ? 32 : 128;
        const prefix = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
        if (version === 0 || extra !== undefined || !(prefix >= 0 && prefix <= max)) {
          throw new ConfigError(`${name} must be addresses or CIDR ranges separated by commas (for example 10.0.0.0/8, ::1), got ${JSON.stringify(entry)}`);
        }
        return Object.freeze({ address, prefix, family: version === 4 ? ("ipv4" as const) : ("ipv6" as const) });
      }),
  );
}
