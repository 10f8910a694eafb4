// Exactly once across kill -9: a real rtae process is killed mid-ingest and again mid-processing,
// restarted on the same data dir, and its totals must equal the ones computed here over the events.

import { afterAll, describe, expect, it } from "bun:test";
import { rmSync } from "node:fs";
import { createGenerator, perturb, type WireEvent } from "../../src/generator/index.ts";
import { expectedOf } from "../ground-truth.ts";
import { freePort, tempDir } from "../helpers.ts";

const dir = tempDir("rtae-crash-");
const port = freePort();
const url = `http://127.0.0.1:${port}`;
let child: ReturnType<typeof Bun.spawn> | null = null;

function start() {
  child = Bun.spawn(
    [process.execPath, "src/main.ts", "serve", "--data-dir", dir, "--port", String(port), "--host", "127.0.0.1",
      "--partitions", "4", "--workers", "2", "--log-level", "error", "--checkpoint-interval", "200ms"],
    { stdout: "ignore", stderr: "inherit", cwd: `${import.meta.dir}/../..` },
  );
}

async function ready(timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`${url}/ready`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await Bun.sleep(25);
  }
  throw new Error("rtae did not become ready");
}

async function kill9() {
  child!.kill("SIGKILL");
  await child!.exited;
  child = null;
}

const send = (batch: WireEvent[]) =>
  fetch(`${url}/api/events`, {
    method: "POST",
    headers: { "content-type": "application/x-ndjson" },
    body: batch.map((e) => JSON.stringify(e)).join("\n"),
  });

afterAll(async () => {
  if (child) await kill9();
  rmSync(dir, { recursive: true, force: true });
});

describe("kill -9 and restart", () => {
  it("counts every acknowledged event exactly once", async () => {
    const gen = createGenerator({ seed: 99, rate: 20, startTime: Date.now() - 60 * 60_000, diurnal: false, bursts: false, products: 500, users: 5000 });
    const p = perturb(gen.next(40_000), { seed: 3, duplicateRate: 0.01, disorderMs: 1000 });
    const events = p.events;
    const BATCH = 1000;
    const batches: WireEvent[][] = [];
    for (let i = 0; i < events.length; i += BATCH) batches.push(events.slice(i, i + BATCH));

    start();
    await ready();
    let i = 0;
    for (; i < 15; i++) expect((await send(batches[i])).status).toBe(202);
    // kill while a request is in flight: its outcome is unknown, so the client retries it after restart
    const inflight = send(batches[i]).catch(() => null);
    await kill9();
    await inflight;
    start();
    await ready();
    for (; i < batches.length; i++) expect((await send(batches[i])).status).toBe(202);
    // and kill again right after the last acknowledgement, while workers and aggregator are busy
    await kill9();
    start();
    await ready();

    // independent answer: the shared plain-loop oracle over every event sent (none is late-dropped here)
    const from = Math.min(...events.map((e) => e.timestamp));
    const to = Math.max(...events.map((e) => e.timestamp)) + 1;
    const x = expectedOf(events, new Set(), from, to);
    let s: any = null;
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      s = await (await fetch(`${url}/api/metrics/summary?from=${from}&to=${to}`)).json();
      if (s.events.total >= x.total) break;
      await Bun.sleep(50);
    }
    expect(s.events.total).toBe(x.total);
    for (const [type, n] of Object.entries(x.byType)) expect([type, s.events[type]]).toEqual([type, n]);
    expect(Math.round(s.revenue * 100)).toBe(x.revenue);
    expect(s.orders).toBe(x.orders);
    expect(s.units).toBe(x.units);
    // injected duplicates, plus the retried batch's events if they had been logged before the kill
    expect(s.duplicates).toBeGreaterThanOrEqual(p.duplicateIds.size);
    expect(s.duplicates).toBeLessThanOrEqual(p.duplicateIds.size + BATCH);
    expect(s.late.dropped).toBe(0);
  }, 120_000);
});
