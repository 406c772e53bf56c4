/**
 * VERDICT_WORKERS=auto: the CPUs a process may use, from the control group files a container
 * runtime writes (cgroup v2 cpu.max, cgroup v1 cfs quota and period), one case per layout; and how
 * VERDICT_WORKERS reads.
 */
import { describe, expect, it } from "vitest";
import { cgroupCpuLimit, usableCpus } from "../../src/cluster/cpu-count.js";
import { ConfigError, loadConfig } from "../../src/config/config.js";

const files = (entries: Record<string, string>) => (path: string) => entries[path];

describe("usable CPUs", () => {
  it.each([
    ["v2, no limit", { "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "max 100000\n" }, undefined],
    ["v2, 2 CPUs", { "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "200000 100000\n" }, 2],
    ["v2, 1.5 CPUs rounds down", { "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "150000 100000\n" }, 1],
    ["v2, half a CPU is still one worker", { "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "50000 100000\n" }, 1],
    [
      "v2, a parent group's tighter limit binds",
      { "/proc/self/cgroup": "0::/kubepods/pod1\n", "/sys/fs/cgroup/kubepods/pod1/cpu.max": "max 100000", "/sys/fs/cgroup/kubepods/cpu.max": "300000 100000" },
      3,
    ],
    [
      "v1, 4 CPUs under cpu,cpuacct",
      { "/proc/self/cgroup": "4:cpu,cpuacct:/docker/abc\n0::/\n", "/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "400000\n", "/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n" },
      4,
    ],
    ["v1, no quota (-1)", { "/proc/self/cgroup": "1:cpu:/\n", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n", "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n" }, undefined],
    ["no cgroup files at all", {}, undefined],
  ])("%s", (_name, entries, expected) => {
    expect(cgroupCpuLimit(files(entries))).toBe(expected);
  });

  it("takes the smaller of the cores and the quota, and at least one", () => {
    const quota = files({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "400000 100000\n" });
    expect(usableCpus(quota, 16)).toBe(4);
    expect(usableCpus(quota, 2)).toBe(2);
    expect(usableCpus(files({}), 8)).toBe(8);
    expect(usableCpus(files({}), 0)).toBe(1);
  });
});

describe("VERDICT_WORKERS", () => {
  const pg = { DATABASE_URL: "postgres://127.0.0.1:5432/verdict" };
  it("is 1 by default, a count, or auto", () => {
    expect(loadConfig({}).workers).toBe(1);
    expect(loadConfig({ ...pg, VERDICT_WORKERS: "4" }).workers).toBe(4);
    expect(loadConfig({ VERDICT_WORKERS: "auto" }).workers).toBe("auto");
    expect(loadConfig({ VERDICT_WORKERS: "1" }).workers).toBe(1);
  });
  it.each(["0", "-1", "1.5", "257", "all"])("refuses %j", (value) => {
    expect(() => loadConfig({ ...pg, VERDICT_WORKERS: value })).toThrow(`VERDICT_WORKERS must be "auto" or a whole number from 1 to 256, got ${JSON.stringify(value)}`);
  });
  it("refuses more than one worker on the embedded database", () => {
    expect(() => loadConfig({ VERDICT_WORKERS: "2" })).toThrow(ConfigError);
    expect(() => loadConfig({ VERDICT_WORKERS: "2" })).toThrow("VERDICT_WORKERS=2 needs DATABASE_URL");
  });
});
