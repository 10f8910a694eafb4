// `rtae produce` as a user runs it: a child process sends generated traffic over HTTP to a real
// server, and every event it reports accepted is visible in the API.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { startTestEngine } from "../helpers.ts";

let t: Awaited<ReturnType<typeof startTestEngine>>;
let server: ReturnType<typeof Bun.serve>;

beforeAll(async () => {
  t = await startTestEngine();
  server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: (req) => t.app.handle(req) });
});
afterAll(async () => {
  server.stop(true);
  await t.stop();
});

describe("rtae produce", () => {
  it("delivers a deterministic generated stream to the ingest API", async () => {
    const run = (target: string) =>
      Bun.spawn(
        [process.execPath, "src/main.ts", "produce", "--target", target, "--count", "3000", "--rate", "20000", "--batch-size", "500", "--seed", "11", "--log-level", "warn"],
        { cwd: `${import.meta.dir}/../..`, stdout: "pipe", stderr: "pipe" },
      );
    const child = run(`http://127.0.0.1:${server.port}`);
    expect(await child.exited).toBe(0);
    expect(await t.engine.caughtUp()).toBe(true);
    const s = (await (await t.app.handle(new Request("http://rtae.test/api/metrics/summary?from=" + (Date.now() - 3_600_000) + "&to=" + (Date.now() + 600_000)))).json()) as any;
    expect(s.events.total + s.duplicates).toBe(3000);

    // the same seed to stdout gives the same 3000 events, one JSON object per line
    const out = run("-");
    const text = await new Response(out.stdout).text();
    expect(await out.exited).toBe(0);
    const lines = text.trim().split("\n");
    expect(lines.length).toBe(3000);
    const ids = new Set(lines.map((l) => JSON.parse(l).eventId as string));
    expect(ids.size).toBe(s.events.total);
  }, 60_000);
});
