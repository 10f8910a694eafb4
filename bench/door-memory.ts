// Resident memory of a real `rtae serve` (default limits: 16 MiB bodies, 64 MiB in flight) while 100
// clients POST 10 MiB bodies to /api/events at once: the attacker's probe of issue #9 (1.3 GB before the
// shared body budget). The clients are bench/body-memory.ts's client mode in a child process; rtae's peak
// RSS is its kernel high-water mark (VmHWM). Standalone, not part of `npm run bench`; stops within 90 s.
//
//   bun bench/door-memory.ts [--clients=100] [--pace=2] [--encoding=identity|gzip]

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const arg = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const clients = arg("clients", "100");
const pace = arg("pace", "2");
const encoding = arg("encoding", "identity");

const status = (pid: number, key: string): number => {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
};

const port = 20_000 + Math.floor(Math.random() * 20_000);
const dir = mkdtempSync(join(tmpdir(), "rtae-door-mem-"));
const repo = join(import.meta.dir, "..");
const rtae = Bun.spawn([process.execPath, "src/main.ts", "serve", "--host", "127.0.0.1", "--port", String(port), "--data-dir", dir, "--log-level", "error"], { cwd: repo, stdout: "ignore", stderr: "inherit" });
const hardStop = setTimeout(() => {
  rtae.kill(9);
  process.exit(1);
}, 90_000);
try {
  for (let i = 0; ; i++) {
    if (i > 200) throw new Error("rtae did not become ready");
    try {
      if ((await fetch(`http://127.0.0.1:${port}/ready`)).ok) break;
    } catch {
      // not listening yet
    }
    await Bun.sleep(50);
  }
  const settled = status(rtae.pid, "VmRSS");
  const child = spawn(process.execPath, [join(import.meta.dir, "body-memory.ts"), `--client=${port}`, `--clients=${clients}`, `--encoding=${encoding}`, `--pace=${pace}`], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  let sampledPeak = settled;
  const sampler = setInterval(() => (sampledPeak = Math.max(sampledPeak, status(rtae.pid, "VmRSS"))), 5);
  const code: number = await new Promise((r) => child.on("exit", (c) => r(c ?? 1)));
  clearInterval(sampler);
  if (code !== 0) throw new Error(`client process exited with ${code}`);
  const result = JSON.parse(out.trim().split("\n").at(-1)!) as { statuses: Record<string, number>; ms: number };
  console.log(
    `rtae serve (defaults), ${clients} concurrent 10 MiB POSTs (${encoding}, pace ${pace} ms per 64 KiB): statuses ${JSON.stringify(result.statuses)} in ${result.ms} ms; ` +
      `RSS settled ${settled.toFixed(0)} MiB, peak ${status(rtae.pid, "VmHWM").toFixed(0)} MiB (sampled ${sampledPeak.toFixed(0)} MiB), after ${status(rtae.pid, "VmRSS").toFixed(0)} MiB`,
  );
} finally {
  clearTimeout(hardStop);
  rtae.kill("SIGTERM");
  await rtae.exited;
  rmSync(dir, { recursive: true, force: true });
}
