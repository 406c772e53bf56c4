/**
 * How many CPUs this process may use: the cores the scheduler lets it run on
 * (os.availableParallelism), capped by the CPU quota of its control group (a container's CPU
 * limit), read from cgroup v2 `cpu.max` or cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`.
 */
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";

/** Reads a file's text, or undefined when it does not exist or cannot be read. */
export type ReadText = (path: string) => string | undefined;

const readText: ReadText = (path) => {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
};

/** Whole CPUs a quota of `quota` µs per `period` µs allows (at least 1), or undefined for no quota. */
function quotaCpus(quota: number, period: number): number | undefined {
  if (!(quota > 0) || !(period > 0)) return undefined;
  return Math.max(1, Math.floor(quota / period));
}

/** The group's path and its ancestors up to the root: "/a/b" gives "/a/b", "/a", "". */
function selfAndAncestors(group: string): string[] {
  const parts = group.split("/").filter((p) => p !== "");
  const out: string[] = [];
  for (let n = parts.length; n >= 0; n--) out.push(n === 0 ? "" : `/${parts.slice(0, n).join("/")}`);
  return out;
}

/** The tightest quota on the way from the group to the root (a parent's limit binds its children). */
function tightest(paths: readonly string[], read: (dir: string) => number | undefined): number | undefined {
  let best: number | undefined;
  for (const dir of paths) {
    const cpus = read(dir);
    if (cpus !== undefined && (best === undefined || cpus < best)) best = cpus;
  }
  return best;
}

/** The CPU quota of this process's control group in whole CPUs, or undefined when there is none. */
export function cgroupCpuLimit(read: ReadText = readText, root = "/sys/fs/cgroup"): number | undefined {
  const membership = read("/proc/self/cgroup") ?? "";
  const lines = membership.split("\n").filter((l) => l !== "");
  // cgroup v2: "0::/path"; cpu.max holds "<quota|max> <period>".
  const v2 = lines.find((l) => l.startsWith("0::"));
  const fromV2 = tightest(selfAndAncestors(v2 ? v2.slice(3) : "/"), (dir) => {
    const text = read(`${root}${dir}/cpu.max`);
    if (text === undefined) return undefined;
    const [quota, period] = text.trim().split(/\s+/);
    return quota === "max" ? undefined : quotaCpus(Number(quota), Number(period));
  });
  if (fromV2 !== undefined) return fromV2;
  // cgroup v1: "N:cpu,cpuacct:/path"; the controller is mounted at cpu,cpuacct or cpu.
  const v1 = lines.map((l) => l.split(":")).find((f) => f.length >= 3 && f[1].split(",").includes("cpu"));
  const group = v1 ? v1.slice(2).join(":") : "/";
  for (const mount of ["cpu,cpuacct", "cpu"]) {
    const cpus = tightest(selfAndAncestors(group), (dir) => {
      const quota = read(`${root}/${mount}${dir}/cpu.cfs_quota_us`);
      const period = read(`${root}/${mount}${dir}/cpu.cfs_period_us`);
      return quota === undefined || period === undefined ? undefined : quotaCpus(Number(quota.trim()), Number(period.trim()));
    });
    if (cpus !== undefined) return cpus;
  }
  return undefined;
}

/** The CPUs this process may use: the available cores, capped by the control group's quota. */
export function usableCpus(read: ReadText = readText, cores: number = availableParallelism()): number {
  const limit = cgroupCpuLimit(read);
  return Math.max(1, limit === undefined ? cores : Math.min(cores, limit));
}
