// One process per data dir (DESIGN §5), with real processes: a second `rtae serve` on a data dir in use exits
// with one clear line while the first keeps serving; kill -9 of the holder leaves no lock to clean by hand.
// In one process, a second engine on the same dir is refused and stop() hands the dir to the next start.

import { afterAll, describe, expect, it } from "bun:test";
import { rmSync } from "node:fs";
import { StartError } from "../../src/errors.ts";
import { startTestEngine, tempDir } from "../helpers.ts";
import { getJson, postNdjson, spawnRtae, waitFor, type RtaeProcess } from "../rtae-process.ts";

const ARGS = ["--partitions", "1", "--workers", "1"];
const spawned: RtaeProcess[] = [];
afterAll(async () => {
  for (const p of spawned) await p.kill9().catch(() => {});
  for (const p of spawned) p.removeDataDir();
});

const pageView = (i: number, t: number) => ({ eventId: `si-${i}`, type: "page_view" as const, timestamp: t, userId: "u", sessionId: `s${i}`, page: "/" });

describe("rtae serve on a data dir in use", () => {
  it("refuses a second process with one line and a non-zero exit; the first keeps serving; kill -9 frees the dir", async () => {
    const first = spawnRtae(ARGS);
    spawned.push(first);
    await first.ready(60_000);
    const t = Date.now() - 60_000;
    expect((await postNdjson(first.url, [pageView(1, t), pageView(2, t)])).accepted).toBe(2);

    const second = spawnRtae(ARGS, { dataDir: first.dataDir, ownsDataDir: false }); // another port, same dir
    spawned.push(second);
    const code = await second.exited;
    expect(code).not.toBe(0);
    expect(second.output().trim()).toBe(`rtae: cannot start: data dir ${first.dataDir} is in use by another rtae process (pid ${first.pid})`);

    // the first was not disturbed: it still answers and takes events
    expect((await fetch(`${first.url}/ready`)).status).toBe(200);
    expect((await postNdjson(first.url, [pageView(3, t)])).accepted).toBe(1);

    await first.kill9();
    const third = first.respawn(); // same port and dir, nothing removed by hand
    spawned.push(third);
    await third.ready(60_000);
    const s = await getJson(third.url, `/api/metrics/summary?from=${t - 1000}&to=${t + 1000}`);
    expect(s.events.total).toBe(3);
  }, 120_000);
});

describe("rtae serve on a port in use", () => {
  it("refuses a second process on the same port with one line (no SO_REUSEPORT sharing); the first keeps all the traffic", async () => {
    const first = spawnRtae(ARGS);
    spawned.push(first);
    await first.ready(60_000);
    const second = spawnRtae(ARGS, { port: first.port }); // its own data dir, the same port
    spawned.push(second);
    const code = await second.exited;
    expect(code).toBe(2);
    // the engine's start log comes first; the refusal is the last line, and no stack trace
    expect(second.output().trim().split("\n").at(-1)).toBe(`rtae: cannot start: port ${first.port} on 127.0.0.1 is in use (another rtae or another program); stop it or choose another --port`);
    expect(second.output()).not.toContain("    at ");
    // every request still reaches the first: none is answered by a half-started second
    const t = Date.now() - 60_000;
    for (let i = 0; i < 20; i++) expect((await postNdjson(first.url, [pageView(100 + i, t)])).accepted).toBe(1);
    // accepted events are counted a moment later: wait for them, then none may be missing
    await waitFor(async () => (await getJson(first.url, `/api/metrics/summary?from=${t - 1000}&to=${t + 1000}`)).events.total === 20, 10_000, "20 events counted");
  }, 120_000);
});

describe("engines of one process", () => {
  const dir = tempDir("rtae-single-");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("refuses a second engine on the same data dir, and starts again on it after stop()", async () => {
    const a = await startTestEngine([], dir);
    let refused: unknown = null;
    try {
      const b = await startTestEngine([], dir);
      await b.stop(false);
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(StartError);
    expect((refused as StartError).code).toBe("data_dir_in_use");
    expect((refused as StartError).message).toBe(`data dir ${dir} is in use by another rtae engine in this process (pid ${process.pid})`);
    // the refused start left the running engine alone
    expect(a.engine.health().status).toBe("ready");
    await a.stop(false);
    const again = await startTestEngine([], dir);
    expect(again.engine.health().status).toBe("ready");
    await again.stop(false);
  }, 60_000);
});
