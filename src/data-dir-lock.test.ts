// The data dir lock: exclusive across processes and across engines of one process, released by release()
// and by the holder's death, and never decided by the pid file.

import { afterEach, describe, expect, it } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lockDataDir, PID_FILE, type DataDirLock } from "./data-dir-lock.ts";
import { StartError } from "./errors.ts";

const dirs: string[] = [];
const locks: DataDirLock[] = [];
const dir = () => {
  const d = mkdtempSync(join(tmpdir(), "rtae-lock-"));
  dirs.push(d);
  return d;
};
const lock = (d: string) => {
  const l = lockDataDir(d);
  locks.push(l);
  return l;
};
afterEach(() => {
  for (const l of locks.splice(0)) l.release();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Tries the lock from another process; resolves with what that process printed. */
async function tryInChild(d: string, holdMs = 0): Promise<string> {
  const script = `
    import { lockDataDir } from ${JSON.stringify(join(import.meta.dir, "data-dir-lock.ts"))};
    try { const l = lockDataDir(${JSON.stringify(d)}); console.log("locked"); await Bun.sleep(${holdMs}); l.release(); }
    catch (e) { console.log(e.code + ": " + e.message); }`;
  const child = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "inherit" });
  const out = await new Response(child.stdout).text();
  await child.exited;
  return out.trim();
}

function refusal(fn: () => unknown): StartError {
  try {
    fn();
  } catch (e) {
    if (e instanceof StartError) return e;
    throw e;
  }
  throw new Error("expected the lock to be refused");
}

describe("lockDataDir", () => {
  it("refuses a second process while held, and lets it in once released", async () => {
    const d = dir();
    const l = lock(d);
    expect(await tryInChild(d)).toBe(`data_dir_in_use: data dir ${d} is in use by another rtae process (pid ${process.pid})`);
    l.release();
    expect(await tryInChild(d)).toBe("locked");
  });

  it("is released by the kernel when the holder is killed with SIGKILL", async () => {
    const d = dir();
    const script = `
      import { lockDataDir } from ${JSON.stringify(join(import.meta.dir, "data-dir-lock.ts"))};
      globalThis.held = lockDataDir(${JSON.stringify(d)}); console.log("locked"); await Bun.sleep(60_000);`;
    const holder = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "inherit" });
    const reader = holder.stdout.getReader();
    expect(new TextDecoder().decode((await reader.read()).value).trim()).toBe("locked");
    expect(refusal(() => lock(d)).message).toBe(`data dir ${d} is in use by another rtae process (pid ${holder.pid})`);
    holder.kill("SIGKILL");
    await holder.exited;
    expect(() => lock(d)).not.toThrow(); // nothing to clean by hand
  });

  it("refuses a second engine of the same process on the same dir, and allows other dirs", () => {
    const d = dir();
    lock(d);
    const e = refusal(() => lock(d));
    expect(e.code).toBe("data_dir_in_use");
    expect(e.message).toBe(`data dir ${d} is in use by another rtae engine in this process (pid ${process.pid})`);
    // the same dir under another spelling is the same dir
    expect(refusal(() => lock(`${d}/.`)).code).toBe("data_dir_in_use");
    expect(() => lock(dir())).not.toThrow();
  });

  it("can be taken again in the same process after release (engine stop, then start)", async () => {
    const d = dir();
    lockDataDir(d).release();
    const again = lock(d);
    expect(readFileSync(join(d, PID_FILE), "utf8").trim()).toBe(String(process.pid));
    // the refused attempt of another process must not have weakened this process's lock
    expect(await tryInChild(d)).toStartWith("data_dir_in_use:");
    expect(await tryInChild(d)).toStartWith("data_dir_in_use:");
    again.release();
    expect(await tryInChild(d)).toBe("locked");
  });

  it("decides by the OS lock, not the pid file: a stale or forged pid file neither blocks nor admits", async () => {
    const d = dir();
    writeFileSync(join(d, PID_FILE), "1\n"); // a live pid that is not an rtae
    expect(await tryInChild(d)).toBe("locked");
    lock(d);
    rmSync(join(d, PID_FILE)); // the holder's pid file removed by hand: still locked
    expect(await tryInChild(d)).toBe("data_dir_in_use: data dir " + d + " is in use by another rtae process (pid unknown)");
  });

  it("says when the data dir cannot be created", () => {
    const d = dir();
    writeFileSync(join(d, "file"), "");
    const e = refusal(() => lock(join(d, "file", "data")));
    expect(e.code).toBe("data_dir_unusable");
    expect(e.message).toBe(`data dir ${join(d, "file", "data")} cannot be created (ENOTDIR)`);
  });
});
