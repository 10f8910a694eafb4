// Child `rtae serve` processes for the bench: free port, temp data dir, readiness wait, /proc readings
// (RSS, per-thread CPU) and a cleanup that always runs, so no server outlives the bench.

import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..");
const HOST = "127.0.0.1";
const TICKS_PER_SEC = 100; // USER_HZ on Linux

export interface ServerChild {
  readonly pid: number;
  readonly url: string;
  readonly dataDir: string;
  readonly logPath: string;
  /** SIGTERM, wait up to `graceMs`, then SIGKILL; removes the data dir. Idempotent. */
  stop(graceMs?: number): Promise<void>;
  exited(): boolean;
}

const live = new Set<ServerChild>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  // last resort: synchronous kill of anything still running when the bench exits for any reason
  process.on("exit", () => {
    for (const c of live) {
      try {
        process.kill(c.pid, "SIGKILL");
      } catch {}
      try {
        rmSync(c.dataDir, { recursive: true, force: true });
      } catch {}
    }
  });
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.on(sig, () => {
      process.exit(130);
    });
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago (bound and released by the OS). */
export function freePort(): number {
  const s = Bun.listen({ hostname: HOST, port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/**
 * Starts `rtae serve` on 127.0.0.1 with a fresh data dir and waits for GET /ready (bounded).
 * `bunArgs` go to the runtime before the script (e.g. --cpu-prof).
 */
export async function startServer(extraArgs: string[] = [], readyTimeoutMs = 30_000, bunArgs: string[] = [], fdLimit?: number): Promise<ServerChild> {
  hookExit();
  const dataDir = mkdtempSync(join(tmpdir(), "rtae-bench-"));
  const logPath = join(dataDir, "server.log");
  const port = freePort();
  const argv = [process.execPath, ...bunArgs, "src/main.ts", "serve", "--data-dir", join(dataDir, "data"), "--port", String(port), "--host", HOST, "--demo-rate", "0", ...extraArgs];
  // raise the open-file limit for the child only (up to the hard limit); exec keeps the pid
  const cmd = fdLimit === undefined ? argv : ["sh", "-c", `ulimit -n ${fdLimit} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"`, ...argv];
  const proc = Bun.spawn(
    cmd,
    { cwd: ROOT, stdout: Bun.file(logPath), stderr: Bun.file(join(dataDir, "server.err")), stdin: "ignore" },
  );
  let done = false;
  const child: ServerChild = {
    pid: proc.pid,
    url: `http://${HOST}:${port}`,
    dataDir,
    logPath,
    exited: () => proc.exitCode !== null || proc.signalCode !== null,
    async stop(graceMs = 10_000) {
      if (done) return;
      done = true;
      if (!child.exited()) {
        proc.kill("SIGTERM");
        const t = setTimeout(() => proc.kill("SIGKILL"), graceMs);
        await proc.exited;
        clearTimeout(t);
      }
      live.delete(child);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  live.add(child);
  const deadline = performance.now() + readyTimeoutMs;
  for (;;) {
    if (child.exited()) {
      const err = serverLogTail(child);
      await child.stop();
      throw new Error(`rtae serve exited before ready (code ${proc.exitCode}):\n${err}`);
    }
    try {
      const r = await fetch(`${child.url}/ready`, { signal: AbortSignal.timeout(1000) });
      if (r.status === 200) return child;
    } catch {}
    if (performance.now() > deadline) {
      await child.stop();
      throw new Error(`rtae serve not ready after ${readyTimeoutMs} ms`);
    }
    await Bun.sleep(50);
  }
}

/** Stops every child still running (used in the bench's finally). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((c) => c.stop()));
}

/** Last lines of a child's stdout and stderr, for failure reports. */
export function serverLogTail(c: ServerChild, lines = 20): string {
  const out: string[] = [];
  for (const f of [c.logPath, join(c.dataDir, "server.err")]) {
    try {
      out.push(...readFileSync(f, "utf8").trimEnd().split("\n").slice(-lines));
    } catch {}
  }
  return out.join("\n");
}

/** Resident and peak resident memory of a process in MB (10^6 bytes, the unit of the targets), from /proc/<pid>/status. */
export function memoryOf(pid: number): { rssMB: number; peakMB: number } {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)\\s+kB`, "m").exec(s)?.[1] ?? NaN);
  return { rssMB: (kb("VmRSS") * 1024) / 1e6, peakMB: (kb("VmHWM") * 1024) / 1e6 };
}

/** Soft and hard open-file limits of a running process, from /proc/<pid>/limits (NaN when unreadable). */
export function openFileLimit(pid: number): { soft: number; hard: number } {
  try {
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync(`/proc/${pid}/limits`, "utf8"));
    const n = (x: string | undefined) => (x === "unlimited" ? Infinity : Number(x));
    return { soft: n(m?.[1]), hard: n(m?.[2]) };
  } catch {
    return { soft: NaN, hard: NaN };
  }
}

/** Cumulative CPU seconds (user + system) of a whole process, exited threads included; 0 once it is gone. */
export function processCpuS(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / TICKS_PER_SEC;
  } catch {
    return 0;
  }
}

/** CPU seconds (user + system) per thread name of a process, from /proc/<pid>/task/<tid>/stat. */
export function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    } catch {
      continue;
    }
    // comm is parenthesised and may hold spaces; fields after it are space-separated
    const open = stat.indexOf("(");
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(open + 1, close);
    const f = stat.slice(close + 2).split(" ");
    const secs = (Number(f[11]) + Number(f[12])) / TICKS_PER_SEC; // utime, stime (fields 14, 15)
    const key = tid === String(pid) ? "main" : comm;
    out.set(key, (out.get(key) ?? 0) + secs);
  }
  return out;
}

/** Per-thread CPU seconds spent between two threadCpu readings (threads that died count as 0). */
export function cpuDelta(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const d: Record<string, number> = {};
  for (const [k, v] of after) {
    const x = v - (before.get(k) ?? 0);
    if (x >= 0.005) d[k] = Math.round(x * 100) / 100;
  }
  return d;
}
