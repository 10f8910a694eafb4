// Machine facts printed with every bench run (CPU, cores, memory, Bun, date), so numbers are read
// against the box that produced them. Linux /proc only; missing files degrade to "unknown".

import { readFileSync } from "node:fs";
import { availableParallelism, totalmem } from "node:os";

export interface MachineFacts {
  cpuModel: string;
  cores: number;
  memoryMiB: number;
  bunVersion: string;
  platform: string;
  kernel: string;
  date: string;
}

function read(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** Facts about this machine and runtime, read once at the start of a run. */
export function machineFacts(): MachineFacts {
  const model = /^model name\s*:\s*(.+)$/m.exec(read("/proc/cpuinfo"));
  return {
    cpuModel: model ? model[1].trim() : "unknown",
    cores: availableParallelism(),
    memoryMiB: Math.round(totalmem() / 1024 / 1024),
    bunVersion: Bun.version,
    platform: `${process.platform}-${process.arch}`,
    kernel: read("/proc/sys/kernel/osrelease").trim() || "unknown",
    date: new Date().toISOString(),
  };
}

/** Machine-wide CPU seconds (busy, and busy + idle) from /proc/stat, summed over all cores. */
export function systemCpu(): { busyS: number; totalS: number } {
  const line = read("/proc/stat").split("\n")[0] ?? "";
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  if (f.length < 5 || f.some((x) => !Number.isFinite(x))) return { busyS: NaN, totalS: NaN };
  const idle = f[3] + (f[4] ?? 0); // idle + iowait
  const total = f.reduce((a, x) => a + x, 0);
  return { busyS: (total - idle) / 100, totalS: total / 100 };
}

/** 1-minute load average, a coarse sign of other work on the box. */
export function loadAverage(): number {
  return Number(read("/proc/loadavg").split(" ")[0]);
}

export interface Contention {
  wallS: number;
  /** CPU seconds used by processes other than the bench and its server during the phase */
  foreignCpuS: number;
  /** foreign CPU as a share of the machine's capacity over the phase (0..1) */
  foreignShare: number;
}

/**
 * Runs `fn` and measures how much CPU other processes took meanwhile: machine busy time minus this
 * process's and the child's (`childCpuS` reads the child's cumulative CPU seconds).
 */
export async function withContention<T>(fn: () => Promise<T> | T, childCpuS: () => number = () => 0): Promise<{ value: T; contention: Contention }> {
  const s0 = systemCpu();
  const own0 = process.cpuUsage();
  const c0 = childCpuS();
  const t0 = performance.now();
  const value = await fn();
  const wallS = (performance.now() - t0) / 1000;
  const own = process.cpuUsage(own0);
  const s1 = systemCpu();
  const c1 = childCpuS();
  const ownS = (own.user + own.system) / 1e6 + Math.max(0, c1 - c0);
  const foreign = Math.max(0, s1.busyS - s0.busyS - ownS);
  const capacity = s1.totalS - s0.totalS;
  return {
    value,
    contention: { wallS, foreignCpuS: Math.round(foreign * 100) / 100, foreignShare: capacity > 0 ? Math.round((foreign / capacity) * 1000) / 1000 : NaN },
  };
}
