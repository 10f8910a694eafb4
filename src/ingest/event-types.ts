// The event contract (DESIGN §2) as types and constants shared by the door, the workers and the generator.
// Money is integer cents inside the engine; the wire form keeps currency units.

export const EVENT_TYPES = [
  "page_view",
  "product_view",
  "add_to_cart",
  "remove_from_cart",
  "checkout",
  "purchase",
  "inventory_update",
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/** Numeric code of each type, used in ring records and pane arrays (index into EVENT_TYPES). */
export const TYPE_CODE: Readonly<Record<EventType, number>> = Object.freeze(
  Object.fromEntries(EVENT_TYPES.map((t, i) => [t, i])) as Record<EventType, number>,
);

export interface PurchaseItem {
  productId: string;
  /** integer cents */
  priceCents: number;
  quantity: number;
  category?: string;
}

/** A validated event, normalised: epoch-ms time, money in integer cents, unknown fields dropped. */
export interface ShopEvent {
  eventId: string;
  type: EventType;
  /** event time, epoch milliseconds */
  time: number;
  userId?: string;
  sessionId?: string;
  page?: string;
  referrer?: string;
  utmSource?: string;
  utmMedium?: string;
  utmCampaign?: string;
  loadTimeMs?: number;
  productId?: string;
  category?: string;
  /** integer cents */
  priceCents?: number;
  quantity?: number;
  orderId?: string;
  currency?: string;
  items?: PurchaseItem[];
  stock?: number;
}

/** Limits of the contract, in one place so the door, the docs and the tests agree. */
export const LIMITS = Object.freeze({
  idMax: 128,
  urlMax: 2048,
  utmMax: 256,
  productMax: 128,
  loadTimeMaxMs: 600_000,
  priceMax: 10_000_000,
  quantityMax: 10_000,
  itemsMax: 500,
  futureSkewMs: 10 * 60_000,
});
