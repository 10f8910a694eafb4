import { describe, expect, it } from "bun:test";
import { EVENT_TYPES } from "../ingest/event-types.ts";
import { validateEvent } from "../ingest/event.ts";
import { GeneratorError } from "./errors.ts";
import { createGenerator, type SimulationOptions } from "./generator.ts";
import { DEFAULT_CAMPAIGNS } from "./sessions.ts";
import type { WireEvent } from "./wire.ts";

const START = Date.UTC(2024, 4, 1, 12, 0, 0);

function run(opts: Partial<SimulationOptions> & { seed: number }, n: number, drain = false): WireEvent[] {
  const g = createGenerator({ rate: 200, startTime: START, ...opts });
  const out = g.next(n);
  if (drain) for (const e of g.drain()) out.push(e);
  return out;
}

/** Generates until at least `sessions` sessions started, then drains so every session is complete. */
function runSessions(opts: Partial<SimulationOptions> & { seed: number }, sessions: number): WireEvent[] {
  const g = createGenerator({ rate: 200, startTime: START, ...opts });
  const out: WireEvent[] = [];
  while (g.sessions < sessions) for (const e of g.next(5_000)) out.push(e);
  for (const e of g.drain()) out.push(e);
  return out;
}

const twoDecimals = (x: unknown): boolean =>
  typeof x === "number" && Number.isFinite(x) && /^\d+(\.\d{1,2})?$/.test(String(x));
const str = (x: unknown, max: number): boolean => typeof x === "string" && x.length >= 1 && x.length <= max;
const int = (x: unknown, lo: number, hi: number): boolean => Number.isInteger(x) && (x as number) >= lo && (x as number) <= hi;

/** Independent structural check of one event against DESIGN §2 plus the generator's own promises. */
function problems(e: WireEvent): string[] {
  const p: string[] = [];
  const need = (ok: boolean, what: string): void => {
    if (!ok) p.push(`${e.eventId ?? "?"} ${e.type}: ${what}`);
  };
  need(str(e.eventId, 128) && /^e-\d+-\d+$/.test(e.eventId), "eventId");
  need((EVENT_TYPES as readonly string[]).includes(e.type), "type");
  need(Number.isInteger(e.timestamp) && e.timestamp >= START, "timestamp");
  if (e.type === "inventory_update") {
    need(e.userId === undefined && e.sessionId === undefined, "no user or session");
    need(str(e.productId, 128) && str(e.category, 128), "product and category");
    need(int(e.stock, 0, 2 ** 31 - 1), "stock");
  } else {
    need(str(e.userId, 128) && str(e.sessionId, 128), "userId and sessionId");
  }
  for (const k of ["utmSource", "utmMedium", "utmCampaign"] as const) if (e[k] !== undefined) need(str(e[k], 256), k);
  switch (e.type) {
    case "page_view":
      need(str(e.page, 2048) && e.page!.startsWith("/"), "page path");
      need(e.referrer === undefined || str(e.referrer, 2048), "referrer");
      need(typeof e.loadTimeMs === "number" && e.loadTimeMs >= 0 && e.loadTimeMs <= 600_000, "loadTimeMs");
      break;
    case "product_view":
    case "add_to_cart":
    case "remove_from_cart":
      need(str(e.productId, 128) && str(e.category, 128), "product and category");
      need(twoDecimals(e.price) && e.price! >= 5 && e.price! <= 500, "price");
      if (e.type === "add_to_cart") need(int(e.quantity, 1, 3), "quantity 1..3");
      if (e.type === "remove_from_cart") need(int(e.quantity, 1, 10_000), "quantity");
      break;
    case "purchase":
      need(str(e.orderId, 128) && e.currency === "USD", "orderId and currency");
      need(Array.isArray(e.items) && e.items.length >= 1 && e.items.length <= 500, "items");
      for (const it of e.items ?? []) {
        need(str(it.productId, 128) && str(it.category, 128), "item product");
        need(twoDecimals(it.price) && it.price >= 5 && it.price <= 500, "item price");
        need(int(it.quantity, 1, 10_000), "item quantity");
      }
      break;
  }
  return p;
}

describe("createGenerator", () => {
  it("replays the same stream for the same seed and a different stream for another seed", () => {
    const a = run({ seed: 7 }, 5_000);
    const b = run({ seed: 7 }, 5_000);
    const c = run({ seed: 8 }, 5_000);
    expect(b).toEqual(a);
    // Ids embed the seed, so compare what a visitor did rather than what it was called.
    const shape = (es: WireEvent[]): string => es.map((e) => `${e.type}|${e.userId}|${e.productId}|${e.page}|${e.timestamp - START}`).join("\n");
    expect(shape(c)).not.toBe(shape(a));
  });

  it("starts at startTime and keeps timestamps non-decreasing across calls and the final drain", () => {
    const g = createGenerator({ seed: 3, rate: 500, startTime: START });
    const all = [...g.next(10_000), ...g.next(1), ...g.next(20_000), ...g.drain()];
    expect(all[0].timestamp).toBe(START);
    let bad = 0;
    for (let i = 1; i < all.length; i++) if (all[i].timestamp < all[i - 1].timestamp) bad++;
    expect(bad).toBe(0);
    expect(g.now).toBe(all[all.length - 1].timestamp);
    expect(g.openSessions).toBe(0);
  });

  it("emits only events that satisfy the wire contract, with unique event and order ids", () => {
    const events = run({ seed: 11 }, 100_000, true);
    const bad = events.flatMap(problems);
    expect(bad.slice(0, 5)).toEqual([]);
    expect(new Set(events.map((e) => e.eventId)).size).toBe(events.length);
    const orders = events.filter((e) => e.type === "purchase").map((e) => e.orderId);
    expect(orders.length).toBeGreaterThan(100);
    expect(new Set(orders).size).toBe(orders.length);
    const seen = new Set(events.map((e) => e.type));
    expect([...seen].sort()).toEqual([...EVENT_TYPES].sort());
  });

  it("passes every generated event through the ingest validator", () => {
    const events = run({ seed: 12 }, 30_000, true);
    const now = events[events.length - 1].timestamp;
    const failures: string[] = [];
    for (const e of events) {
      const v = validateEvent(JSON.parse(JSON.stringify(e)), { now, maxAgeMs: 400 * 86_400_000, currency: "USD" });
      if (!v.ok) failures.push(`${e.type}: ${v.reason}`);
    }
    expect(failures.slice(0, 5)).toEqual([]);
  });

  it("keeps one price per product and purchase items equal to the cart built by the session's events", () => {
    const events = runSessions({ seed: 13 }, 8_000);
    const price = new Map<string, number>();
    let conflicts = 0;
    const note = (id: string, p: number): void => {
      const old = price.get(id);
      if (old !== undefined && old !== p) conflicts++;
      price.set(id, p);
    };
    const carts = new Map<string, Map<string, number>>();
    let purchases = 0;
    let mismatched = 0;
    for (const e of events) {
      if (e.price !== undefined && e.productId !== undefined) note(e.productId, e.price);
      if (e.type === "add_to_cart" || e.type === "remove_from_cart") {
        const cart = carts.get(e.sessionId!) ?? new Map<string, number>();
        carts.set(e.sessionId!, cart);
        const q = (cart.get(e.productId!) ?? 0) + (e.type === "add_to_cart" ? e.quantity! : -e.quantity!);
        if (q < 0) mismatched++;
        if (q === 0) cart.delete(e.productId!);
        else cart.set(e.productId!, q);
      }
      if (e.type === "purchase") {
        purchases++;
        for (const it of e.items!) note(it.productId, it.price);
        const cart = [...(carts.get(e.sessionId!) ?? new Map<string, number>())].sort();
        const items = e.items!.map((it) => [it.productId, it.quantity] as [string, number]).sort();
        if (JSON.stringify(cart) !== JSON.stringify(items)) mismatched++;
      }
    }
    expect(purchases).toBeGreaterThan(200);
    expect(conflicts).toBe(0);
    expect(mismatched).toBe(0);
  });

  it("matches the configured funnel step rates over 20 000 complete sessions", () => {
    const funnel = { view: 0.6, cart: 0.25, checkout: 0.5, purchase: 0.6 };
    const events = runSessions({ seed: 21, funnel }, 20_000);
    const steps = new Map<string, Set<string>>();
    for (const e of events) {
      if (e.sessionId === undefined) continue;
      const s = steps.get(e.sessionId) ?? new Set<string>();
      steps.set(e.sessionId, s);
      s.add(e.type);
    }
    const order = ["product_view", "add_to_cart", "checkout", "purchase"];
    const rates: number[] = [];
    let base = [...steps.values()];
    expect(base.length).toBeGreaterThanOrEqual(20_000);
    const sizes: number[] = [];
    for (const step of order) {
      const reached = base.filter((s) => s.has(step));
      sizes.push(base.length);
      rates.push(reached.length / base.length);
      base = reached;
    }
    const want = [funnel.view, funnel.cart, funnel.checkout, funnel.purchase];
    for (let i = 0; i < 4; i++) {
      // Four binomial standard errors, and never looser than 5 points.
      const tol = Math.min(0.05, 4 * Math.sqrt((want[i] * (1 - want[i])) / sizes[i]));
      expect(Math.abs(rates[i] - want[i])).toBeLessThanOrEqual(tol);
    }
    // No session reaches a later step without the earlier ones.
    for (const s of steps.values()) {
      if (s.has("purchase")) expect(s.has("checkout") && s.has("add_to_cart") && s.has("product_view")).toBe(true);
    }
  });

  it("makes the most popular product far more viewed than the median one, close to its Zipf share", () => {
    const products = 10_000;
    const events = run({ seed: 5, products, zipfS: 1.1 }, 100_000);
    const views = new Map<string, number>();
    let total = 0;
    for (const e of events) {
      if (e.type !== "product_view") continue;
      total++;
      views.set(e.productId!, (views.get(e.productId!) ?? 0) + 1);
    }
    const counts = [...views.values()];
    while (counts.length < products) counts.push(0);
    counts.sort((a, b) => b - a);
    const median = counts[products >> 1];
    expect(counts[0]).toBeGreaterThan(100 * Math.max(1, median));
    let h = 0;
    for (let k = 1; k <= products; k++) h += 1 / Math.pow(k, 1.1);
    expect(Math.abs(counts[0] / total - 1 / h)).toBeLessThan(0.02);
  });

  it("splits sessions across campaigns close to their weights and puts utm only on the landing page_view", () => {
    const events = run({ seed: 9 }, 150_000, true);
    const first = new Map<string, WireEvent>();
    let utmElsewhere = 0;
    for (const e of events) {
      if (e.sessionId === undefined) continue;
      if (!first.has(e.sessionId)) first.set(e.sessionId, e);
      else if (e.utmSource !== undefined) utmElsewhere++;
    }
    expect(utmElsewhere).toBe(0);
    const sessions = [...first.values()];
    expect(sessions.every((e) => e.type === "page_view")).toBe(true);
    const bySource = new Map<string, number>();
    for (const e of sessions) bySource.set(e.utmSource ?? "(direct)", (bySource.get(e.utmSource ?? "(direct)") ?? 0) + 1);
    const want = new Map(DEFAULT_CAMPAIGNS.map((c) => [c.source, c.weight]));
    want.set("(direct)", 1 - DEFAULT_CAMPAIGNS.reduce((s, c) => s + c.weight, 0));
    expect([...bySource.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [source, w] of want) expect(Math.abs(bySource.get(source)! / sessions.length - w)).toBeLessThan(0.015);
  });

  it("interleaves many sessions and spaces a visitor's page loads by seconds", () => {
    const events = run({ seed: 4, rate: 100, bursts: false, diurnal: false }, 60_000);
    const window = events.slice(40_000, 41_000);
    expect(new Set(window.map((e) => e.sessionId)).size).toBeGreaterThan(300);
    // Gaps between consecutive page_views of a session, after the pool has ramped up.
    const last = new Map<string, number>();
    const gaps: number[] = [];
    for (const e of events.slice(20_000)) {
      if (e.type !== "page_view") continue;
      const prev = last.get(e.sessionId!);
      if (prev !== undefined) gaps.push(e.timestamp - prev);
      last.set(e.sessionId!, e.timestamp);
    }
    gaps.sort((a, b) => a - b);
    const median = gaps[gaps.length >> 1];
    expect(median).toBeGreaterThan(2_000);
    expect(median).toBeLessThan(60_000);
  });

  it("draws page load times around an 800 ms median with a long tail", () => {
    const loads = run({ seed: 6 }, 60_000)
      .filter((e) => e.type === "page_view")
      .map((e) => e.loadTimeMs!)
      .sort((a, b) => a - b);
    const q = (p: number): number => loads[Math.floor(p * (loads.length - 1))];
    expect(q(0.5)).toBeGreaterThan(700);
    expect(q(0.5)).toBeLessThan(900);
    expect(q(0.99)).toBeGreaterThan(4 * q(0.5));
    expect(loads[loads.length - 1]).toBeLessThanOrEqual(600_000);
  });

  it("emits inventory updates about every 50 events, draining popular stock below 10 and restocking it", () => {
    const events = run({ seed: 10, inventoryEvery: 50 }, 200_000);
    const inv = events.filter((e) => e.type === "inventory_update");
    expect(Math.abs(inv.length / events.length - 1 / 50)).toBeLessThan(0.002);
    expect(inv.some((e) => e.stock! < 10)).toBe(true);
    const last = new Map<string, number>();
    let down = 0;
    let up = 0;
    for (const e of inv) {
      const prev = last.get(e.productId!);
      if (prev !== undefined) {
        if (e.stock! <= prev) down++;
        else up++;
      }
      last.set(e.productId!, e.stock!);
    }
    expect(up).toBeGreaterThan(0);
    expect(down).toBeGreaterThan(10 * up);
    expect(run({ seed: 10, inventoryEvery: 0 }, 10_000).some((e) => e.type === "inventory_update")).toBe(false);
  });

  it("advances simulated time at the configured rate when unmodulated", () => {
    const events = run({ seed: 2, rate: 1_000, bursts: false, diurnal: false }, 100_000);
    const seconds = (events[events.length - 1].timestamp - events[0].timestamp) / 1000;
    expect(Math.abs(100_000 / seconds - 1_000)).toBeLessThan(20);
  });

  it("follows the day: about 3× more traffic at the 20:00 peak than at the 08:00 trough, same daily mean", () => {
    const rate = 2;
    const day0 = Date.UTC(2024, 4, 1);
    const g = createGenerator({ seed: 15, rate, startTime: day0, diurnal: true, bursts: true, products: 500, users: 1000 });
    const events = g.until(day0 + 86_400_000 - 1);
    const hours = new Array<number>(24).fill(0);
    for (const e of events) hours[new Date(e.timestamp).getUTCHours()]++;
    expect(Math.abs(events.length / 86_400 - rate) / rate).toBeLessThan(0.05);
    const peak = hours[19] + hours[20];
    const trough = hours[7] + hours[8];
    expect(peak / trough).toBeGreaterThan(2.4);
    expect(peak / trough).toBeLessThan(3.6);
  });

  it("returns exactly the events due by a time from until() and honours its cap", () => {
    const g = createGenerator({ seed: 1, rate: 100, startTime: START });
    const a = g.until(START + 5_000);
    expect(a.length).toBeGreaterThan(300);
    expect(a.every((e) => e.timestamp <= START + 5_000)).toBe(true);
    expect(g.now).toBe(START + 5_000);
    const b = g.until(START + 10_000, 10);
    expect(b.length).toBe(10);
    const rest = g.until(START + 10_000);
    expect(rest[0].timestamp).toBeGreaterThan(START + 5_000);
    // The same seed generated in one go gives the same events.
    const whole = createGenerator({ seed: 1, rate: 100, startTime: START }).until(START + 10_000);
    expect([...a, ...b, ...rest]).toEqual(whole);
  });

  it("refuses invalid options with a typed error", () => {
    const bad: Partial<SimulationOptions>[] = [{ rate: 0 }, { rate: Number.NaN }, { products: 0 }, { funnel: { view: 1.5 } }, { users: 2.5 }];
    for (const o of bad) {
      let err: unknown;
      try {
        createGenerator({ seed: 1, rate: 10, ...o });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(GeneratorError);
      expect((err as GeneratorError).code).toBe("invalid_options");
    }
  });
});
