// Interned product ids are released: 400 k unique product ids go through HTTP, the log, the workers and the
// aggregator; once their windows are final and stored, the dictionaries (the aggregator's and the workers')
// drop back to what retained state needs, and every answer, before and after the freed numbers are reused,
// equals the plain-loop oracle over the same events. The processing clock is injected: sweeps follow it.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { WireEvent } from "../../src/generator/index.ts";
import { answerMismatches, buildDataset, expectedOf, secondRange } from "../ground-truth.ts";
import { getJson, post, startTestEngine } from "../helpers.ts";

const HOUR = 3_600_000;
const ATTACK = 400_000;
/** the dictionary's sweep interval (processing time) */
const SWEEP_MS = 60_000;
const hourA = Math.floor((Date.now() - 5 * HOUR) / HOUR) * HOUR;

const clock = { now: Date.now(), fn: () => clock.now };
let t: Awaited<ReturnType<typeof startTestEngine>>;
/** what was sent after the attack; the attack's events are generated again for the oracle, so the test's own
 * copy of them does not count in the memory measured */
const arrivals: WireEvent[] = [];
const none = new Set<string>();
let shopLo = 0;
let shopHi = 0;
const get = async (path: string) => {
  const r = await getJson(t.app, path);
  if (r.status !== 200) throw new Error(`${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
};
const stats = () => t.engine.stats() as { dictionaryIds: number; workerDictionaryIds: number; dictionary: { released: number } };

async function send(events: WireEvent[]): Promise<void> {
  for (let i = 0; i < events.length; i += 10_000) {
    const res = await post(t.app, events.slice(i, i + 10_000).map((e) => JSON.stringify(e)).join("\n"));
    expect(res.status).toBe(202);
    expect(((await res.json()) as { rejected: number }).rejected).toBe(0);
  }
  expect(await t.engine.caughtUp(60_000)).toBe(true);
}

/** Waits for a condition the drain loop brings about (it runs every few ms), up to a deadline. */
async function until(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(stats())}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function memory() {
  Bun.gc(true);
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
}

/** 400 k product views with a product id each, spread over one hour; every 1000th product also gets stock. */
function attack(): WireEvent[] {
  const out: WireEvent[] = [];
  for (let i = 0; i < ATTACK; i++) {
    const timestamp = hourA + Math.floor((i * HOUR) / ATTACK);
    const s = i % 2000;
    out.push({ eventId: `atk-${i}`, type: i % 5 === 0 ? "add_to_cart" : "product_view", timestamp, userId: `au-${s}`, sessionId: `as-${s}`, productId: `atk-${i}`, price: 1, ...(i % 5 === 0 ? { quantity: 1 } : {}) });
    if (i % 1000 === 0) out.push({ eventId: `atk-stock-${i}`, type: "inventory_update", timestamp, productId: `atk-${i}`, stock: i % 50 });
  }
  return out;
}

const ranges = () =>
  [
    ["the attack hour", hourA, hourA + HOUR],
    ["the shop's range", shopLo, shopHi],
    ["everything", hourA, shopHi + 60_000],
  ] as const;

async function mismatches(): Promise<string[]> {
  const out: string[] = [];
  const all = attack().concat(arrivals);
  for (const [name, f, tt] of ranges()) {
    const { from, to } = secondRange(f, tt);
    const x = expectedOf(all, none, from, to);
    for (const m of await answerMismatches(get, x, from, to, ["summary", "top", "funnel", "campaigns", "performance", "inventory"])) out.push(`${name}: ${m}`);
  }
  return out;
}

const mem: Record<string, { rss: number; heap: number }> = {};

beforeAll(async () => {
  t = await startTestEngine(["--partitions", "4"], undefined, { clock: clock.fn });
  mem.base = memory();
}, 30_000);

afterAll(async () => {
  await t?.stop();
});

describe("dictionary memory under 400 k unique product ids", () => {
  it("holds every product id while its windows are open", async () => {
    await send(attack());
    const s = stats();
    expect(s.dictionaryIds).toBeGreaterThanOrEqual(ATTACK);
    expect(s.workerDictionaryIds).toBeGreaterThanOrEqual(ATTACK);
    mem.peak = memory();
  }, 120_000);

  it("releases them once their windows are final and stored, keeping the stocked ones and the shop's", async () => {
    // two hours later a shop runs for ~50 min of event time: the watermark passes the attack hour's end
    const d = buildDataset({ n: 30_000, seed: 99, rate: 10, start: hourA + 2 * HOUR, bursts: false, products: 300, users: 3000, perturb: { seed: 5, duplicateRate: 0.01, disorderMs: 1000 }, dropEvery: 0 });
    shopLo = d.lo;
    shopHi = d.hi;
    await send(d.arrivals);
    arrivals.push(...d.arrivals);
    // what retained state still needs: the stocked attack products (inventory), and the shop's products and
    // sources (its hour is still open)
    const needed = new Set<string>();
    for (const e of attack()) if (e.type === "inventory_update") needed.add(e.productId!);
    const stocked = needed.size;
    for (const e of d.arrivals) {
      if (e.productId !== undefined) needed.add(e.productId);
      for (const it of e.items ?? []) needed.add(it.productId);
      if (e.utmSource !== undefined) needed.add(e.utmSource);
    }
    // the final windows are written and leave memory at the checkpoint
    await t.engine.checkpoint();
    await t.engine.checkpoint();
    // first sweep: nothing but the workers' translations needs the attack ids; the workers forget them
    clock.now += SWEEP_MS + 1;
    const workers = t.engine.config.workers;
    await until("the workers to release their string ids", () => stats().workerDictionaryIds <= workers * needed.size);
    // next sweep: the aggregator's dictionary frees them
    clock.now += SWEEP_MS + 1;
    await until("the dictionary to release the attack ids", () => stats().dictionaryIds <= needed.size);
    const s = stats();
    expect(s.dictionaryIds).toBeGreaterThanOrEqual(stocked);
    expect(s.dictionary.released).toBeGreaterThanOrEqual(ATTACK - stocked);
    mem.released = memory();
    const mb = (b: number) => `${(b / 1048576).toFixed(1)} MB`;
    console.log(
      `ids held after the release: ${s.dictionaryIds} (workers: ${s.workerDictionaryIds}); main thread, after GC: base rss ${mb(mem.base.rss)} heap ${mb(mem.base.heap)}; 400 k ids held rss ${mb(mem.peak.rss)} heap ${mb(mem.peak.heap)} ` +
        `(${Math.round((mem.peak.heap - mem.base.heap) / ATTACK)} B/id of heap); released rss ${mb(mem.released.rss)} heap ${mb(mem.released.heap)}`,
    );
    // loose sanity bound: the main thread's heap gives back most of what the held ids took
    expect(mem.released.heap - mem.base.heap).toBeLessThan((mem.peak.heap - mem.base.heap) / 2);
  }, 120_000);

  it("gives the freed numbers to new product ids", async () => {
    const before = stats().dictionaryIds;
    const fresh: WireEvent[] = [];
    for (let i = 0; i < 20_000; i++)
      fresh.push({ eventId: `new-${i}`, type: i % 3 === 0 ? "add_to_cart" : "product_view", timestamp: shopHi + 10_000 + i * 2, userId: `nu-${i % 50}`, sessionId: `ns-${i % 50}`, productId: `new-${i}`, price: 2.5, ...(i % 3 === 0 ? { quantity: 2 } : {}) });
    await send(fresh);
    arrivals.push(...fresh);
    // the numbers come from the free list: the new ids took numbers the attack's ids had
    const dict = t.engine.aggregator.dict;
    const numbers = fresh.map((e) => dict.lookup(e.productId!));
    expect(numbers.filter((n) => n >= 0 && n < ATTACK).length).toBeGreaterThan(19_000);
    expect(stats().dictionaryIds).toBeLessThan(before + 20_000 + 1000);
  }, 120_000);

  it("answers exactly over stored and open windows, with the numbers reused", async () => {
    expect(await mismatches()).toEqual([]);
  }, 120_000);
});
