// Retention and truncation: the log is cut below what a restart needs once checkpoints cover it,
// and history windows older than their resolution's retention are pruned while coarser ones answer.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { openLogReader } from "../../src/ingest/index.ts";
import { getJson, post, startTestEngine } from "../helpers.ts";

let t: Awaited<ReturnType<typeof startTestEngine>>;
const HOUR = 3_600_000;
const now = Date.now();
const old = Math.floor((now - 3 * HOUR) / 60_000) * 60_000 + 30_000; // 3 h ago, mid-minute
const recent = Math.floor((now - 30 * 60_000) / 1000) * 1000;

beforeAll(async () => {
  t = await startTestEngine(["--retention", "1s=2h"]);
});
afterAll(async () => {
  await t.stop();
});

describe("retention", () => {
  it("truncates the log once checkpoints and dedupe state cover it", async () => {
    // the old events go first: sent after the recent ones they would be far behind the watermark
    for (const at of [old, recent]) {
      const lines = [];
      for (let i = 0; i < 200; i++)
        lines.push(JSON.stringify({ eventId: `r${at}-${i}`, type: "page_view", timestamp: at + i, userId: `u${i % 7}`, sessionId: `s${i % 13}` }));
      expect((await post(t.app, lines.join("\n"))).status).toBe(202);
      expect(await t.engine.caughtUp()).toBe(true);
    }
    const reader = openLogReader(t.dir);
    let retained = 0;
    const deadline = Date.now() + 15_000;
    // the workers persist dedupe state about once a second; truncation follows the next checkpoint
    do {
      await t.engine.checkpoint();
      retained = 0;
      for (let p = 0; p < 4; p++) retained += reader.endOffset(p) - reader.startOffset(p);
      if (retained === 0) break;
      await Bun.sleep(100);
    } while (Date.now() < deadline);
    reader.close();
    expect(retained).toBe(0);
  });

  it("prunes 1 s windows past their retention and answers old ranges from 1 m windows", async () => {
    await t.engine.checkpoint();
    const removed = await t.engine.store.prune(t.engine.config.retention, Date.now());
    expect(removed).toBeGreaterThan(0);
    const rows1s = await t.engine.store.readWindows(["core"], 1000, old - 60_000, old + 60_000);
    expect(rows1s.length).toBe(0);
    const rows1m = await t.engine.store.readWindows(["core"], 60_000, old - 60_000, old + 60_000);
    expect(rows1m.length).toBeGreaterThan(0);
    // a range with second-precise edges 3 h ago widens to whole minutes and still finds the events
    const s = (await getJson(t.app, `/api/metrics/summary?from=${old + 5000}&to=${old + 6000}`)).body;
    expect(s.events.page_view).toBe(200);
    const r = (await getJson(t.app, `/api/metrics/summary?from=${recent}&to=${recent + 1000}`)).body;
    expect(r.events.page_view).toBe(200);
  });
});
