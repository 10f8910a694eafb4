// A throwaway redis-server per test (no persistence) that can be killed and restarted on the same port,
// so "Redis stopped mid-stream" never touches the shared server at 6379. Includes a raw RESP client
// for probes that must not depend on any Redis library's reconnect logic.

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket, Subprocess } from "bun";
import { freePort } from "./helpers.ts";
import { collect } from "./rtae-process.ts";

export interface PrivateRedis {
  readonly port: number;
  /** redis://127.0.0.1:<port> */
  readonly url: string;
  readonly running: boolean;
  /** SIGKILL and wait for exit; every key is lost (no persistence). */
  stop(): Promise<void>;
  /** Starts it again on the same port and waits until PING answers. */
  restart(): Promise<void>;
  /** Tail of the server's output, for failure messages. */
  output(): string;
}

const live = new Set<Subprocess>();
// a failed test must not leave servers behind: kill whatever is still running when the test process exits
process.on("exit", () => {
  for (const p of live) p.kill("SIGKILL");
});

/** Starts a private redis-server on a free 127.0.0.1 port and waits until it answers PING. */
export async function startPrivateRedis(opts: { port?: number; timeoutMs?: number } = {}): Promise<PrivateRedis> {
  const port = opts.port ?? freePort();
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const dir = mkdtempSync(join(tmpdir(), "rtae-redis-"));
  let out = "";
  let child: Subprocess<"ignore", "pipe", "pipe"> | null = null;

  const launch = async () => {
    // stop() removes the dir (nothing in it is kept anyway), so a restart makes it again
    mkdirSync(dir, { recursive: true });
    const p = Bun.spawn(
      ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", dir, "--daemonize", "no", "--loglevel", "warning"],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    child = p;
    live.add(p);
    void p.exited.then(() => live.delete(p));
    void collect(p.stdout, (s) => (out = (out + s).slice(-8192)));
    void collect(p.stderr, (s) => (out = (out + s).slice(-8192)));
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (p.exitCode !== null || p.signalCode !== null) throw new Error(`redis-server on port ${port} exited (${p.exitCode ?? p.signalCode}):\n${out}`);
      if ((await redisCommand(port, ["PING"], 500).catch(() => null)) === "+PONG") return;
      await Bun.sleep(20);
    }
    p.kill("SIGKILL");
    throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms:\n${out}`);
  };

  const stop = async () => {
    const p = child;
    if (p === null) return;
    child = null;
    p.kill("SIGKILL");
    await p.exited;
  };

  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get running() {
      return child !== null && child.exitCode === null && child.signalCode === null;
    },
    async stop() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await stop();
      await launch();
    },
    output: () => out,
  };
}

/**
 * Sends one command over a fresh connection and returns the first complete reply in raw RESP text without
 * its final CRLF (e.g. "+PONG", ":3", "$5\r\nhello"). Rejects when the connection fails, closes early or
 * the reply does not come within timeoutMs.
 */
export function redisCommand(port: number, args: readonly string[], timeoutMs = 2000, host = "127.0.0.1"): Promise<string> {
  const { promise, resolve, reject } = Promise.withResolvers<string>();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let done = false;
  const settle = (f: () => void) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    f();
  };
  const timer = setTimeout(() => settle(() => reject(new Error(`no reply from ${host}:${port} within ${timeoutMs} ms`))), timeoutMs);
  const enc = new TextEncoder();
  const parts = args.map((a) => enc.encode(a));
  let req = `*${parts.length}\r\n`;
  const body: Uint8Array[] = [];
  for (const p of parts) {
    body.push(enc.encode(`${req}$${p.byteLength}\r\n`), p);
    req = "\r\n";
  }
  body.push(enc.encode("\r\n"));
  const payload = Buffer.concat(body);
  let off = 0;
  // a large SET (a test of the proxy's backpressure) may not fit the socket buffer in one write
  const pump = (s: Socket<undefined>) => {
    while (off < payload.byteLength) {
      const n = s.write(payload, off, payload.byteLength - off);
      if (n <= 0) return;
      off += n;
    }
  };
  Bun.connect({
    hostname: host,
    port,
    socket: {
      open: pump,
      drain: pump,
      data(s, d) {
        chunks.push(new Uint8Array(d));
        size += d.byteLength;
        const buf = Buffer.concat(chunks, size);
        const end = replyEnd(buf);
        if (end >= 0) {
          // settle before end(): end() runs the close handler synchronously
          settle(() => resolve(buf.subarray(0, end - 2).toString("utf8")));
          s.end();
        }
      },
      close() {
        settle(() => reject(new Error(`connection to ${host}:${port} closed before a reply`)));
      },
      error(_s, e) {
        settle(() => reject(e));
      },
      connectError(_s, e) {
        settle(() => reject(e));
      },
    },
  }).catch((e: unknown) => settle(() => reject(e)));
  return promise;
}

/** Index just past the first complete simple or bulk reply in buf, or -1 (arrays are not needed here). */
function replyEnd(buf: Buffer): number {
  const line = buf.indexOf("\r\n");
  if (line < 0) return -1;
  if (buf[0] !== 0x24 /* $ */) return line + 2;
  const len = Number(buf.subarray(1, line).toString());
  if (len < 0) return line + 2;
  const end = line + 2 + len + 2;
  return buf.byteLength >= end ? end : -1;
}
