// The wire shape of generated events (DESIGN §2): currency units with at most 2 decimals, epoch-ms timestamps.
// Plain objects with only the fields an event type uses, so JSON.stringify gives exactly what a client would send.

import type { EventType } from "../ingest/event-types.ts";

export interface WireItem {
  productId: string;
  /** currency units, at most 2 decimals */
  price: number;
  quantity: number;
  category?: string;
}

export interface WireEvent {
  eventId: string;
  type: EventType;
  /** event time, epoch milliseconds */
  timestamp: number;
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
  /** currency units, at most 2 decimals */
  price?: number;
  quantity?: number;
  orderId?: string;
  currency?: string;
  items?: WireItem[];
  stock?: number;
}

/** NDJSON body for a batch: one JSON object per line, each line ending in "\n". */
export function toNdjson(events: readonly WireEvent[]): string {
  let out = "";
  for (let i = 0; i < events.length; i++) out += JSON.stringify(events[i]) + "\n";
  return out;
}
