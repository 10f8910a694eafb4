// Shared helpers for integration tests: a real engine (workers, sqlite) in a temporary data dir.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseCli } from "../src/config.ts";
import { startEngine, type Engine, type EngineOptions } from "../src/engine.ts";
import { createApp } from "../src/server/app.ts";

export function tempDir(prefix = "rtae-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** `options`: engine options such as an injected processing-time clock */
export async function startTestEngine(args: string[] = [], dir = tempDir(), options: EngineOptions = {}) {
  const { config } = parseCli(["serve", "--data-dir", dir, "--partitions", "4", "--workers", "2", "--log-level", "warn", ...args], {});
  const engine: Engine = await startEngine(config, options);
  const app = createApp(engine);
  return {
    engine,
    app,
    dir,
    async stop(remove = true) {
      await engine.stop();
      if (remove) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function post(app: { handle(r: Request): Promise<Response> }, body: string | Uint8Array<ArrayBuffer>, contentType: string | null = "application/x-ndjson") {
  const headers: Record<string, string> = {};
  if (contentType !== null) headers["content-type"] = contentType;
  return app.handle(new Request("http://rtae.test/api/events", { method: "POST", body, headers }));
}

export async function getJson(app: { handle(r: Request): Promise<Response> }, path: string) {
  const res = await app.handle(new Request(`http://rtae.test${path}`));
  return { status: res.status, body: (await res.json()) as any };
}

/** A free TCP port on 127.0.0.1 (bound and released). */
export function freePort(): number {
  const s = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("") });
  const port = s.port!;
  s.stop(true);
  return port;
}

/** True when something accepts TCP connections on 127.0.0.1:port within 2 s (service probes for skips). */
export async function tcpReachable(port: number): Promise<boolean> {
  try {
    const socket = await Promise.race([
      Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error("timeout")), 2000)),
    ]);
    socket.end();
    return true;
  } catch {
    return false;
  }
}
