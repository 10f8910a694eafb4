// The simulated shop: a pool of concurrent sessions advanced one event per tick of a Poisson clock at `rate`×shape.
// One event per tick makes the output rate exact by construction; the pool size (rate × think time) sets think times.

import { createCatalog, type Catalog } from "./catalog.ts";
import { check } from "./errors.ts";
import { createInventory } from "./inventory.ts";
import { createPrng } from "./prng.ts";
import { createRateShape } from "./rate-shape.ts";
import {
  createCampaignMix,
  DEFAULT_CAMPAIGNS,
  DEFAULT_FUNNEL,
  emitStep,
  nextIsSticky,
  planSession,
  purchasedLines,
  type Campaign,
  type FunnelProbabilities,
  type Session,
  type SessionContext,
} from "./sessions.ts";
import type { WireEvent } from "./wire.ts";

export interface GeneratorOptions {
  /** everything is deterministic from this */
  seed: number;
  /** catalog size, default 10 000 */
  products?: number;
  /** user pool, default 100 000 */
  users?: number;
  /** product popularity exponent, default 1.1 */
  zipfS?: number;
  /** epoch ms of the first event, default Date.now() */
  startTime?: number;
  /** session shares; the remainder up to 1 is direct traffic (default: 55 % campaigns, 45 % direct) */
  campaigns?: readonly Campaign[];
  /** per-session conditional step probabilities, default view 0.6, cart 0.25, checkout 0.5, purchase 0.6 */
  funnel?: Partial<FunnelProbabilities>;
  /** emit an inventory_update roughly every N events, default 50; 0 turns them off */
  inventoryEvery?: number;
  /** currency of purchases, default "USD" */
  currency?: string;
  /** mean think time between a visitor's page loads, default 10 s (shortened when the session cap binds) */
  thinkTimeMs?: number;
  /** cap on concurrently open sessions before diurnal and burst modulation, default 20 000 */
  maxSessions?: number;
  /** mean quiet time between bursts, default 5 min */
  burstEveryMs?: number;
}

export interface SimulationOptions extends GeneratorOptions {
  /** average events per second of simulated time */
  rate: number;
  /** sinusoidal day, amplitude 0.5, peak 20:00 UTC; default true */
  diurnal?: boolean;
  /** 10–30 s bursts at 3–5×, about every 5 min; default true */
  bursts?: boolean;
}

export interface Generator {
  /** The next n events, interleaved across concurrent sessions, timestamps non-decreasing. */
  next(n: number): WireEvent[];
  /** Every event due at or before `time` (at most `max`); without a cap the clock then stands at `time`. */
  until(time: number, max?: number): WireEvent[];
  /** Starts no new sessions (nor inventory updates) and returns the remaining events of all open ones, so every session is complete. */
  drain(): WireEvent[];
  /** Moves the clock forward to `time` without emitting; open sessions simply resume later. */
  skipTo(time: number): void;
  /** Simulated clock (ms): time of the last emitted event, or how far until() has advanced. */
  readonly now: number;
  /** Sessions started so far. */
  readonly sessions: number;
  /** Sessions currently open. */
  readonly openSessions: number;
  readonly catalog: Catalog;
}

/** Creates a deterministic traffic simulation starting at `startTime`. */
export function createGenerator(opts: SimulationOptions): Generator {
  const rate = opts.rate;
  check(Number.isFinite(rate) && rate > 0, `rate must be a positive number of events per second, got ${rate}`);
  check(Number.isFinite(opts.seed), `seed must be a finite number, got ${opts.seed}`);
  const products = opts.products ?? 10_000;
  check(Number.isInteger(products) && products >= 1, `products must be a positive integer, got ${products}`);
  const users = opts.users ?? 100_000;
  check(Number.isInteger(users) && users >= 1, `users must be a positive integer, got ${users}`);
  const zipfS = opts.zipfS ?? 1.1;
  check(Number.isFinite(zipfS) && zipfS >= 0, `zipfS must be >= 0, got ${zipfS}`);
  const funnel: FunnelProbabilities = { ...DEFAULT_FUNNEL, ...opts.funnel };
  for (const [k, v] of Object.entries(funnel)) check(v >= 0 && v <= 1, `funnel.${k} must be within 0..1, got ${v}`);
  const campaigns = opts.campaigns ?? DEFAULT_CAMPAIGNS;
  for (const c of campaigns) {
    check(Number.isFinite(c.weight) && c.weight >= 0, `campaign ${c.source} weight must be >= 0, got ${c.weight}`);
  }
  const inventoryEvery = opts.inventoryEvery ?? 50;
  check(inventoryEvery === 0 || (Number.isFinite(inventoryEvery) && inventoryEvery >= 1), `inventoryEvery must be 0 (off) or >= 1, got ${inventoryEvery}`);
  const think = opts.thinkTimeMs ?? 10_000;
  check(Number.isFinite(think) && think > 0, `thinkTimeMs must be positive, got ${think}`);
  const maxSessions = opts.maxSessions ?? 20_000;
  check(Number.isInteger(maxSessions) && maxSessions >= 1, `maxSessions must be a positive integer, got ${maxSessions}`);
  const start = opts.startTime ?? Date.now();
  check(Number.isFinite(start), `startTime must be epoch milliseconds, got ${start}`);

  const seed = opts.seed;
  const catalog = createCatalog({ seed, products, zipfS });
  const rng = createPrng(seed, "traffic");
  const shape = createRateShape({
    rng: createPrng(seed, "shape"),
    start,
    diurnal: opts.diurnal ?? true,
    bursts: opts.bursts ?? true,
    burstEveryMs: opts.burstEveryMs,
  });
  const inventory = createInventory(catalog, createPrng(seed, "inventory"));
  const ctx: SessionContext = {
    rng,
    catalog,
    funnel,
    campaigns: createCampaignMix(campaigns),
    users,
    seed,
    currency: opts.currency ?? "USD",
  };

  // Little's law: with one event per tick and uniform picks, each open session steps every pool/rate seconds.
  const poolSize = Math.max(1, Math.min(maxSessions, Math.round((rate * think) / 1000)));
  const effectiveThink = (poolSize / rate) * 1000;
  const pInventory = inventoryEvery > 0 ? 1 / inventoryEvery : 0;
  const eventPrefix = `e-${seed}-`;
  const pool: Session[] = [];
  let sticky: Session | null = null;
  let nextAt = start;
  let now = start;
  let eventNo = 0;
  let sessionNo = 0;
  let plannedSteps = 0;
  let draining = false;

  // The pool grows over about one session lifetime, so the stream does not open with a wall of landings.
  const target = (t: number, f: number): number => {
    const meanSteps = sessionNo > 0 ? plannedSteps / sessionNo : 6;
    const ramp = Math.min(1, (t - start) / (effectiveThink * meanSteps));
    return Math.max(1, Math.ceil(poolSize * f * ramp));
  };

  const startSession = (): Session => {
    const s = planSession(ctx, ++sessionNo);
    plannedSteps += s.steps.length;
    s.slot = pool.length;
    pool.push(s);
    return s;
  };

  const close = (s: Session): void => {
    const last = pool.pop() as Session;
    if (last !== s) {
      pool[s.slot] = last;
      last.slot = s.slot;
    }
    s.slot = -1;
  };

  const emitOne = (out: WireEvent[]): void => {
    const t = nextAt;
    const ts = Math.floor(t);
    const f = shape.factor(t);
    const eventId = eventPrefix + ++eventNo;
    if (pInventory > 0 && !draining && rng.next() < pInventory) {
      const { product, stock } = inventory.update();
      out.push({ eventId, type: "inventory_update", timestamp: ts, productId: product.id, category: product.category, stock });
    } else {
      let s = sticky;
      if (s === null) {
        if (!draining && pool.length < target(t, f)) s = startSession();
        else s = pool[rng.int(pool.length)];
      }
      const at = s.pos;
      out.push(emitStep(ctx, s, eventId, ts));
      const sold = purchasedLines(s, at);
      if (sold !== null) for (const l of sold) inventory.sold(l.product, l.quantity);
      sticky = nextIsSticky(s) ? s : null;
      if (s.pos >= s.steps.length) close(s);
    }
    now = ts;
    nextAt = t + rng.exponential(1000 / (rate * f));
  };

  return {
    next(n) {
      const out: WireEvent[] = [];
      for (let i = 0; i < n; i++) emitOne(out);
      return out;
    },
    until(time, max = Infinity) {
      const out: WireEvent[] = [];
      while (Math.floor(nextAt) <= time && out.length < max) emitOne(out);
      if (out.length < max && time > now) now = time;
      return out;
    },
    drain() {
      const out: WireEvent[] = [];
      draining = true;
      while (pool.length > 0) emitOne(out);
      draining = false;
      return out;
    },
    skipTo(time) {
      if (time > nextAt) nextAt = time;
      if (time > now) now = time;
    },
    get now() {
      return now;
    },
    get sessions() {
      return sessionNo;
    },
    get openSessions() {
      return pool.length;
    },
    catalog,
  };
}
