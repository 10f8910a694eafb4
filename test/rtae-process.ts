// Real rtae processes for multi-process tests: spawn `serve` on a free port, wait for /ready, kill -9 or stop,
// respawn on the same port and data dir; plus HTTP ingest with retries, polling and unique resource names.
// Output is kept (tail) so a failed readiness or a crash reports what the process said.

import { rmSync } from "node:fs";
import type { Subprocess } from "bun";
import type { WireEvent } from "../src/generator/index.ts";
import { decidedOf } from "./ground-truth.ts";
import { freePort, tempDir } from "./helpers.ts";

/** The part of GET /api/metrics/summary the helpers read; the rest is there too. */
export interface Summary {
  events: Record<string, number> & { total: number };
  duplicates: number;
  late: { merged: number; dropped: number };
  revenue: number;
  orders: number;
  units: number;
  [k: string]: unknown;
}

const REPO = `${import.meta.dir}/..`;
const OUTPUT_TAIL = 64 * 1024;

export interface SpawnRtaeOptions {
  /** working directory, default the repository root */
  cwd?: string;
  /** default: a free port */
  port?: number;
  /** default: a new temporary directory */
  dataDir?: string;
  /** whether removeDataDir() deletes the data dir; default true exactly when spawnRtae created it */
  ownsDataDir?: boolean;
  /** extra environment, on top of the test process's */
  env?: Record<string, string>;
  /** also copy the process's output to this process's stderr (or set RTAE_TEST_ECHO=1) */
  echo?: boolean;
}

export interface RtaeProcess {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly pid: number;
  /** the arguments after `serve --host --port --data-dir` */
  readonly args: readonly string[];
  /** exit code (128 + signal number when killed by a signal) */
  readonly exited: Promise<number>;
  /** Resolves when GET /ready answers 200; rejects with the output tail on timeout or early exit. */
  ready(timeoutMs?: number): Promise<void>;
  /** SIGKILL and wait for the exit. */
  kill9(): Promise<void>;
  /** SIGTERM and wait for the exit code; after timeoutMs it is killed and this rejects. */
  stop(timeoutMs?: number): Promise<number>;
  /** A new process with the same arguments, port and data dir (call after this one has exited). */
  respawn(): RtaeProcess;
  /** Tail of stderr and stdout, interleaved as they arrived. */
  output(): string;
  /** Removes the data dir when owned (see SpawnRtaeOptions.ownsDataDir). */
  removeDataDir(): void;
}

const live = new Set<Subprocess>();
// a test that fails before its afterAll must not leave servers holding ports and consumer-group members
process.on("exit", () => {
  for (const p of live) p.kill("SIGKILL");
});

/** Spawns `rtae serve --host 127.0.0.1 --port P --data-dir D ...args` with the pinned Bun. */
export function spawnRtae(args: readonly string[], opts: SpawnRtaeOptions = {}): RtaeProcess {
  const ownDir = opts.ownsDataDir ?? opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? tempDir("rtae-proc-");
  const port = opts.port ?? freePort();
  const url = `http://127.0.0.1:${port}`;
  const echo = opts.echo ?? process.env.RTAE_TEST_ECHO === "1";
  const child = Bun.spawn(
    [process.execPath, "src/main.ts", "serve", "--host", "127.0.0.1", "--port", String(port), "--data-dir", dataDir, ...args],
    { cwd: opts.cwd ?? REPO, env: { ...process.env, ...opts.env }, stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  live.add(child);
  let out = "";
  const sink = (s: string) => {
    out = (out + s).slice(-OUTPUT_TAIL);
    if (echo) process.stderr.write(`[rtae :${port}] ${s}`);
  };
  const drained = Promise.all([collect(child.stdout, sink), collect(child.stderr, sink)]);
  // wait for the pipes too, so output() after `exited` holds the last words
  const exited = child.exited.then(async (code) => {
    live.delete(child);
    await drained;
    return code;
  });
  const tail = () => (out.length > 4000 ? `…${out.slice(-4000)}` : out);

  const self: RtaeProcess = {
    url,
    port,
    dataDir,
    pid: child.pid,
    args,
    exited,
    async ready(timeoutMs = 30_000) {
      let gone: number | null = null;
      void exited.then((c) => (gone = c));
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (gone !== null) throw new Error(`rtae on port ${port} exited with ${gone} before it was ready:\n${tail()}`);
        try {
          if ((await fetch(`${url}/ready`, { signal: AbortSignal.timeout(2000) })).status === 200) return;
        } catch {
          // not listening yet
        }
        await Bun.sleep(25);
      }
      throw new Error(`rtae on port ${port} was not ready within ${timeoutMs} ms:\n${tail()}`);
    },
    async kill9() {
      child.kill("SIGKILL");
      await exited;
    },
    async stop(timeoutMs = 30_000) {
      child.kill("SIGTERM");
      const timer = new Promise<"timeout">((r) => setTimeout(r, timeoutMs, "timeout"));
      const r = await Promise.race([exited, timer]);
      if (r === "timeout") {
        child.kill("SIGKILL");
        await exited;
        throw new Error(`rtae on port ${port} did not exit within ${timeoutMs} ms of SIGTERM:\n${tail()}`);
      }
      return r;
    },
    respawn() {
      if (child.exitCode === null && child.signalCode === null) throw new Error(`rtae on port ${port} is still running`);
      return spawnRtae(args, { ...opts, port, dataDir, ownsDataDir: ownDir });
    },
    output: () => out,
    removeDataDir() {
      if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return self;
}

/** Runs a one-shot command (`migrate ...`, `version`) to completion and returns its exit code and output. */
export async function runRtae(args: readonly string[], opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<{ code: number; output: string }> {
  const child = Bun.spawn([process.execPath, "src/main.ts", ...args], {
    cwd: opts.cwd ?? REPO, env: { ...process.env, ...opts.env }, stdin: "ignore", stdout: "pipe", stderr: "pipe",
  });
  live.add(child);
  let out = "";
  const sink = (s: string) => void (out = (out + s).slice(-OUTPUT_TAIL));
  const drained = Promise.all([collect(child.stdout, sink), collect(child.stderr, sink)]);
  const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
  const code = await child.exited;
  clearTimeout(timer);
  live.delete(child);
  await drained;
  return { code, output: out };
}

export interface PostResult {
  accepted: number;
  rejected: number;
  requests: number;
  /** attempts answered 503/429 (or failed, with retryNetworkErrors) and sent again */
  retries: number;
}

export interface PostOptions {
  /** give up on a batch after this long, default 60 s */
  timeoutMs?: number;
  headers?: Record<string, string>;
  /**
   * Also retry when the connection fails (the instance was killed). The outcome of such a request is unknown,
   * so its events may be logged twice: they then count as duplicates.
   */
  retryNetworkErrors?: boolean;
}

/**
 * POSTs the events as NDJSON in batches, round-robin over the given instances, in order. A batch answered
 * 503 (log unavailable) or 429 is sent again after a short backoff; any other non-202 throws with the body.
 */
export async function postNdjson(url: string | readonly string[], events: readonly WireEvent[], batchSize = 1000, opts: PostOptions = {}): Promise<PostResult> {
  const urls = typeof url === "string" ? [url] : url;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const res: PostResult = { accepted: 0, rejected: 0, requests: 0, retries: 0 };
  for (let i = 0, b = 0; i < events.length; i += batchSize, b++) {
    let body = "";
    for (let j = i; j < Math.min(i + batchSize, events.length); j++) body += JSON.stringify(events[j]) + "\n";
    const target = `${urls[b % urls.length]}/api/events`;
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 0; ; attempt++) {
      let r: Response | null = null;
      try {
        res.requests++;
        r = await fetch(target, { method: "POST", headers: { "content-type": "application/x-ndjson", ...opts.headers }, body });
      } catch (e) {
        if (!opts.retryNetworkErrors || Date.now() > deadline) throw e;
      }
      if (r?.status === 202) {
        const j = (await r.json()) as { accepted: number; rejected: number };
        res.accepted += j.accepted;
        res.rejected += j.rejected;
        break;
      }
      if (r !== null && r.status !== 503 && r.status !== 429) throw new Error(`POST ${target} batch ${b}: ${r.status} ${await r.text()}`);
      if (Date.now() > deadline) throw new Error(`POST ${target} batch ${b}: still ${r?.status ?? "failing"} after ${timeoutMs} ms`);
      const retryAfter = Number(r?.headers.get("retry-after"));
      await r?.body?.cancel();
      res.retries++;
      await Bun.sleep(retryAfter > 0 ? retryAfter * 1000 : Math.min(1000, 25 * 2 ** attempt));
    }
  }
  return res;
}

/** GET a JSON answer from an instance; throws on a non-200 with the body. */
export async function getJson(url: string, path: string): Promise<any> {
  const r = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(10_000) });
  if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${await r.text()}`);
  return r.json();
}

/**
 * Polls fn until it returns a truthy value and returns that value. A throw counts as "not yet". On timeout
 * it rejects naming `what` and the last value or error, so a failed wait says what it last saw.
 */
export async function waitFor<T>(fn: () => T | Promise<T>, timeoutMs: number, what = "condition", intervalMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = undefined;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      const seen = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${seen?.slice(0, 2000)}`);
    }
    await Bun.sleep(intervalMs);
  }
}

/**
 * Polls the summary over [from, to) until the engine has decided on at least n arrivals (counted, duplicate
 * or late-dropped; see decidedOf) and returns that summary. With every arrival inside the range this is
 * "caught up" seen from outside the process.
 */
export function waitForDecided(url: string, from: number, to: number, n: number, timeoutMs = 60_000): Promise<Summary> {
  return waitFor(async () => {
    const s = (await getJson(url, `/api/metrics/summary?from=${from}&to=${to}`)) as Summary;
    // a throw, so that a timeout reports how far it got
    if (decidedOf(s) < n) throw new Error(`decided ${decidedOf(s)} of ${n}`);
    return s;
  }, timeoutMs, `${n} events decided at ${url}`);
}

let counter = 0;

/**
 * A name unique to this run, valid everywhere the tests need one: a Kafka topic or consumer group, a Redis
 * prefix (append ":"), a Cassandra keyspace (letters, digits, underscore, starts with a letter, ≤ 48 chars).
 */
export function uniqueName(prefix = "t"): string {
  let p = prefix.toLowerCase().replace(/[^a-z0-9_]/g, "_");
  if (!/^[a-z]/.test(p)) p = `t${p}`;
  const suffix = `${Date.now().toString(36)}${process.pid.toString(36)}${(counter++).toString(36)}${Math.floor(Math.random() * 36 ** 4).toString(36).padStart(4, "0")}`;
  return `${p.slice(0, 47 - suffix.length)}_${suffix}`;
}

/** Feeds a child's output stream to `sink` as text until it ends (or the child is killed). */
export async function collect(stream: ReadableStream<Uint8Array>, sink: (s: string) => void): Promise<void> {
  const reader = stream.getReader();
  const dec = new TextDecoder();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      sink(dec.decode(value, { stream: true }));
    }
  } catch {
    // the process was killed mid-read
  }
}
