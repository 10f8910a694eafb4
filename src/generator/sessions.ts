// Visitor sessions: a plan of steps drawn when the session starts (landing, browsing, cart, checkout, purchase),
// then turned into wire events one step at a time. Planning up front makes the funnel probabilities exact per session.

import type { Catalog, Product } from "./catalog.ts";
import type { Prng } from "./prng.ts";
import type { WireEvent, WireItem } from "./wire.ts";

/** Per-session step probabilities, each conditional on the previous step. */
export interface FunnelProbabilities {
  /** a session views at least one product */
  view: number;
  /** a viewing session adds to cart */
  cart: number;
  /** a carting session reaches checkout */
  checkout: number;
  /** a checking-out session purchases */
  purchase: number;
}

/** A traffic source; `weight` is its share of sessions. */
export interface Campaign {
  source: string;
  medium: string;
  campaign: string;
  weight: number;
}

export const DEFAULT_FUNNEL: Readonly<FunnelProbabilities> = Object.freeze({
  view: 0.6,
  cart: 0.25,
  checkout: 0.5,
  purchase: 0.6,
});

/** Campaign shares sum to 0.55; the remaining 0.45 of sessions are direct (no utm). */
export const DEFAULT_CAMPAIGNS: readonly Campaign[] = Object.freeze([
  { source: "google", medium: "cpc", campaign: "spring_sale", weight: 0.18 },
  { source: "facebook", medium: "social", campaign: "retargeting", weight: 0.12 },
  { source: "newsletter", medium: "email", campaign: "weekly_digest", weight: 0.1 },
  { source: "instagram", medium: "social", campaign: "influencer", weight: 0.08 },
  { source: "bing", medium: "cpc", campaign: "brand", weight: 0.04 },
  { source: "tiktok", medium: "social", campaign: "launch", weight: 0.03 },
]);

export const SITE = "https://shop.example";
const ORGANIC_REFERRERS = ["https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/"];
const INFO_PAGES = ["/", "/", "/", "/deals", "/new", "/help", "/search"];
const MAX_BROWSE_PAGES = 8;
const LOAD_MEDIAN_MS = 800;
const LOAD_MAX_MS = 600_000;

/** Draws a campaign by weight; null means direct traffic. */
export interface CampaignMix {
  pick(rng: Prng): Campaign | null;
  /** share of direct sessions */
  readonly direct: number;
}

/**
 * Weights are session shares: when they sum to at most 1 the remainder is direct traffic,
 * otherwise they are normalised and there is no direct traffic.
 */
export function createCampaignMix(campaigns: readonly Campaign[]): CampaignMix {
  const total = campaigns.reduce((s, c) => s + c.weight, 0);
  const scale = total > 1 ? 1 / total : 1;
  const cum: number[] = [];
  let acc = 0;
  for (const c of campaigns) {
    acc += c.weight * scale;
    cum.push(acc);
  }
  return {
    direct: Math.max(0, 1 - acc),
    pick(rng) {
      const u = rng.next();
      for (let i = 0; i < cum.length; i++) if (u < cum[i]) return campaigns[i];
      return null;
    },
  };
}

type StepKind = "page" | "product" | "add" | "remove" | "checkout" | "purchase";

interface CartLine {
  product: Product;
  quantity: number;
}

interface Step {
  kind: StepKind;
  page: string | null;
  product: Product | null;
  quantity: number;
  /** emitted right after the previous step (same page load), not after a think time */
  sticky: boolean;
  lines: CartLine[] | null;
}

export interface Session {
  readonly id: string;
  readonly userId: string;
  readonly campaign: Campaign | null;
  readonly landingReferrer: string | null;
  readonly orderId: string | null;
  readonly steps: readonly Step[];
  /** index of the next step */
  pos: number;
  lastPage: string | null;
  /** position in the generator's active pool, for O(1) removal */
  slot: number;
}

export interface SessionContext {
  rng: Prng;
  catalog: Catalog;
  funnel: FunnelProbabilities;
  campaigns: CampaignMix;
  /** size of the user pool */
  users: number;
  /** seed as it appears in ids ("s-<seed>-<n>", "o-<seed>-<n>") */
  seed: number;
  currency: string;
}

const step = (kind: StepKind, page: string | null, product: Product | null, quantity = 0, sticky = false): Step => ({
  kind,
  page,
  product,
  quantity,
  sticky,
  lines: null,
});

/** Draws the whole plan of session number n. */
export function planSession(ctx: SessionContext, n: number): Session {
  const { rng, catalog, funnel } = ctx;
  // u² gives a mild skew: the busiest user is about √users times more active than average.
  const u = rng.next();
  const userIdx = Math.floor(ctx.users * u * u);
  const userId = `u${String(userIdx + 1).padStart(6, "0")}`;
  const campaign = ctx.campaigns.pick(rng);
  let landingReferrer: string | null = null;
  if (campaign !== null) landingReferrer = campaignReferrer(campaign);
  else if (rng.chance(0.35)) landingReferrer = ORGANIC_REFERRERS[rng.int(ORGANIC_REFERRERS.length)];

  const views = rng.chance(funnel.view);
  const carts = views && rng.chance(funnel.cart);
  const checks = carts && rng.chance(funnel.checkout);
  const buys = checks && rng.chance(funnel.purchase);

  let pages = 1;
  while (pages < MAX_BROWSE_PAGES && rng.chance(0.65)) pages++;
  const kinds: number[] = new Array(pages); // 0 info, 1 category, 2 product
  let lastProduct = -1;
  for (let i = 0; i < pages; i++) {
    const r = rng.next();
    kinds[i] = views ? (r < 0.55 ? 2 : r < 0.85 ? 1 : 0) : r < 0.6 ? 1 : 0;
    if (kinds[i] === 2) lastProduct = i;
  }
  if (views && lastProduct < 0) {
    lastProduct = pages - 1;
    kinds[lastProduct] = 2;
  }

  const steps: Step[] = [];
  const lines: CartLine[] = [];
  let added = false;
  for (let i = 0; i < pages; i++) {
    if (kinds[i] === 2) {
      const p = catalog.samplePopular(rng);
      steps.push(step("page", `/p/${p.id}`, p));
      steps.push(step("product", null, p, 0, true));
      if (carts && ((!added && (i === lastProduct || rng.chance(0.5))) || (added && rng.chance(0.25)))) {
        const q = rng.between(1, 3);
        steps.push(step("add", null, p, q));
        const line = lines.find((l) => l.product === p);
        if (line) line.quantity += q;
        else lines.push({ product: p, quantity: q });
        added = true;
        // A checking-out session keeps at least one line; an abandoning one may empty its cart.
        if (rng.chance(0.12) && (!checks || lines.length >= 2)) {
          const k = rng.int(lines.length);
          const gone = lines[k];
          const q2 = gone.quantity > 1 && rng.chance(0.5) ? rng.between(1, gone.quantity - 1) : gone.quantity;
          steps.push(step("remove", null, gone.product, q2));
          gone.quantity -= q2;
          if (gone.quantity === 0) lines.splice(k, 1);
        }
      }
    } else if (kinds[i] === 1) {
      steps.push(step("page", `/c/${catalog.samplePopular(rng).category}`, null));
    } else {
      const page = INFO_PAGES[rng.int(INFO_PAGES.length)];
      steps.push(step("page", page === "/search" ? `/search?q=${catalog.samplePopular(rng).category}` : page, null));
    }
  }
  if (checks || (carts && rng.chance(0.4))) steps.push(step("page", "/cart", null));
  if (checks) {
    steps.push(step("page", "/checkout", null));
    steps.push(step("checkout", null, null, 0, true));
  }
  if (buys) {
    const s = step("purchase", null, null);
    s.lines = lines.map((l) => ({ product: l.product, quantity: l.quantity }));
    steps.push(s);
    steps.push(step("page", "/checkout/complete", null, 0, true));
  }
  return {
    id: `s-${ctx.seed}-${n}`,
    userId,
    campaign,
    landingReferrer,
    orderId: buys ? `o-${ctx.seed}-${n}` : null,
    steps,
    pos: 0,
    lastPage: null,
    slot: -1,
  };
}

/** Turns the session's next step into a wire event and advances it; the caller checks `pos` for the end. */
export function emitStep(ctx: SessionContext, s: Session, eventId: string, timestamp: number): WireEvent {
  const st = s.steps[s.pos++];
  const base = { eventId, type: "page_view" as WireEvent["type"], timestamp, userId: s.userId, sessionId: s.id };
  switch (st.kind) {
    case "page": {
      const e: WireEvent = base;
      const page = st.page as string;
      e.page = page;
      const ref = s.lastPage === null ? s.landingReferrer : SITE + s.lastPage;
      if (ref !== null) e.referrer = ref;
      if (s.lastPage === null && s.campaign !== null) {
        e.utmSource = s.campaign.source;
        e.utmMedium = s.campaign.medium;
        e.utmCampaign = s.campaign.campaign;
      }
      e.loadTimeMs = loadTime(ctx.rng);
      s.lastPage = page;
      return e;
    }
    case "product":
    case "add":
    case "remove": {
      const p = st.product as Product;
      const e: WireEvent = base;
      e.type = st.kind === "product" ? "product_view" : st.kind === "add" ? "add_to_cart" : "remove_from_cart";
      e.productId = p.id;
      e.category = p.category;
      e.price = p.price;
      if (st.kind !== "product") e.quantity = st.quantity;
      return e;
    }
    case "checkout": {
      const e: WireEvent = base;
      e.type = "checkout";
      return e;
    }
    case "purchase": {
      const e: WireEvent = base;
      e.type = "purchase";
      e.orderId = s.orderId as string;
      e.currency = ctx.currency;
      e.items = (st.lines as CartLine[]).map(
        (l): WireItem => ({ productId: l.product.id, price: l.product.price, quantity: l.quantity, category: l.product.category }),
      );
      return e;
    }
  }
}

/** Cart lines a purchase step sells, for the inventory; null for other steps. */
export function purchasedLines(s: Session, stepIndex: number): readonly { product: Product; quantity: number }[] | null {
  const st = s.steps[stepIndex];
  return st.kind === "purchase" ? st.lines : null;
}

/** Whether the step at `pos` continues the previous page load without a think time. */
export function nextIsSticky(s: Session): boolean {
  return s.pos < s.steps.length && s.steps[s.pos].sticky;
}

function campaignReferrer(c: Campaign): string | null {
  if (c.medium === "email") return null;
  const known: Record<string, string> = {
    google: "https://www.google.com/",
    facebook: "https://www.facebook.com/",
    instagram: "https://www.instagram.com/",
    bing: "https://www.bing.com/",
    tiktok: "https://www.tiktok.com/",
  };
  return known[c.source] ?? `https://www.${c.source.toLowerCase().replace(/[^a-z0-9.-]/g, "")}.com/`;
}

/** Log-normal around 800 ms with a long tail: ~2 % of loads are an order of magnitude slower. */
function loadTime(rng: Prng): number {
  let ms = rng.logNormal(LOAD_MEDIAN_MS, 0.6);
  if (rng.chance(0.02)) ms *= rng.logNormal(10, 0.8);
  return Math.min(LOAD_MAX_MS, Math.max(1, Math.round(ms)));
}
