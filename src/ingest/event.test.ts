import { describe, expect, it } from "bun:test";
import { parseBody, toWire, validateEvent, type BodyItem, type ValidateContext } from "./event.ts";
import { EVENT_TYPES, type EventType, type ShopEvent } from "./event-types.ts";

const NOW = Date.UTC(2024, 4, 1, 12, 0, 0);
const DAY = 86_400_000;
const ctx: ValidateContext = { now: NOW, maxAgeMs: 400 * DAY, currency: "USD" };

type Raw = Record<string, unknown>;

/** A valid raw event of each type, in wire form. */
function base(type: EventType): Raw {
  const common = { eventId: `e-${type}`, type, timestamp: NOW - 1000, userId: "u1", sessionId: "s1" };
  switch (type) {
    case "page_view":
      return { ...common, page: "/home", loadTimeMs: 120 };
    case "product_view":
    case "add_to_cart":
    case "remove_from_cart":
      return { ...common, productId: "p1" };
    case "checkout":
      return common;
    case "purchase":
      return { ...common, items: [{ productId: "p1", price: 19.99, quantity: 2 }] };
    case "inventory_update":
      return { eventId: "e-inv", type, timestamp: NOW - 1000, productId: "p1", stock: 7 };
  }
}

function accept(raw: unknown, c: ValidateContext = ctx): ShopEvent {
  const v = validateEvent(raw, c);
  if (!v.ok) throw new Error(`expected accept, got: ${v.reason}`);
  return v.event;
}

function reject(raw: unknown, c: ValidateContext = ctx): string {
  const v = validateEvent(raw, c);
  if (v.ok) throw new Error(`expected reject, got: ${JSON.stringify(v.event)}`);
  return v.reason;
}

const enc = new TextEncoder();
const bytesOf = (s: string): Uint8Array => enc.encode(s);
function concat(...parts: (string | number[] | Uint8Array)[]): Uint8Array {
  const chunks = parts.map((p) => (typeof p === "string" ? enc.encode(p) : p instanceof Uint8Array ? p : Uint8Array.from(p)));
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
/** Items without their `raw` line, after checking that each raw line is exactly what was parsed. */
function itemsOf(body: ReturnType<typeof parseBody>): BodyItem[] {
  if (!body.ok) throw new Error(`expected ok body, got ${body.code}: ${body.message}`);
  return body.items.map(({ raw, ...item }) => {
    if (raw !== undefined) expect(JSON.parse(raw)).toEqual(item.value);
    return item;
  });
}

describe("validateEvent: shape and required fields", () => {
  it("accepts a minimal event of every type and normalises it", () => {
    const t = NOW - 1000;
    const who = { userId: "u1", sessionId: "s1" };
    const expected: Record<EventType, ShopEvent> = {
      page_view: { eventId: "e-page_view", type: "page_view", time: t, ...who, page: "/home", loadTimeMs: 120 },
      product_view: { eventId: "e-product_view", type: "product_view", time: t, ...who, productId: "p1" },
      add_to_cart: { eventId: "e-add_to_cart", type: "add_to_cart", time: t, ...who, productId: "p1", quantity: 1 },
      remove_from_cart: { eventId: "e-remove_from_cart", type: "remove_from_cart", time: t, ...who, productId: "p1", quantity: 1 },
      checkout: { eventId: "e-checkout", type: "checkout", time: t, ...who },
      purchase: {
        eventId: "e-purchase",
        type: "purchase",
        time: t,
        ...who,
        currency: "USD",
        items: [{ productId: "p1", priceCents: 1999, quantity: 2 }],
      },
      inventory_update: { eventId: "e-inv", type: "inventory_update", time: t, productId: "p1", stock: 7 },
    };
    for (const type of EVENT_TYPES) expect(accept(base(type))).toStrictEqual(expected[type]);
  });

  it("rejects values that are not JSON objects", () => {
    for (const v of [null, [], [base("checkout")], 5, "event", true, undefined]) {
      expect(reject(v)).toStartWith("event must be a JSON object");
    }
  });

  it("requires eventId, type and timestamp on every type", () => {
    for (const field of ["eventId", "type", "timestamp"]) {
      const raw = { ...base("checkout"), [field]: undefined };
      expect(reject(raw)).toBe(`${field} is required`);
    }
  });

  it("requires userId and sessionId except on inventory_update", () => {
    for (const field of ["userId", "sessionId"]) {
      for (const type of EVENT_TYPES) {
        if (type === "inventory_update") continue;
        const raw = { ...base(type) };
        delete raw[field];
        expect(reject(raw)).toBe(`${field} is required`);
      }
      expect(accept({ ...base("inventory_update"), [field]: "x1" })[field as "userId"]).toBe("x1");
    }
    expect(accept(base("inventory_update")).userId).toBeUndefined();
  });

  it("treats null in an optional field as absent and in a required field as missing", () => {
    expect(accept({ ...base("page_view"), referrer: null }).referrer).toBeUndefined();
    expect(reject({ ...base("page_view"), userId: null })).toBe("userId is required");
  });

  it("ignores unknown fields and does not copy them", () => {
    const e = accept({ ...base("checkout"), extra: 1, time: 5, priceCents: 100, nested: { a: [1, 2] } });
    expect(Object.keys(e).sort()).toEqual(["eventId", "sessionId", "time", "type", "userId"]);
    expect(e.time).toBe(NOW - 1000);
  });
});

describe("validateEvent: ids and strings", () => {
  it("accepts ids of 1 to 128 characters and rejects empty, longer or non-string ids", () => {
    expect(accept({ ...base("checkout"), eventId: "a" }).eventId).toBe("a");
    expect(accept({ ...base("checkout"), eventId: "x".repeat(128) }).eventId).toHaveLength(128);
    expect(reject({ ...base("checkout"), eventId: "" })).toBe("eventId must not be empty");
    expect(reject({ ...base("checkout"), eventId: "x".repeat(129) })).toBe("eventId must be at most 128 characters, got 129");
    expect(reject({ ...base("checkout"), eventId: 42 })).toBe("eventId must be a string of 1 to 128 characters, got 42");
    expect(reject({ ...base("checkout"), userId: "" })).toBe("userId must not be empty");
    expect(reject({ ...base("checkout"), sessionId: "s".repeat(129) })).toStartWith("sessionId must be at most 128");
    expect(reject({ ...base("checkout"), sessionId: { id: 1 } })).toBe(
      "sessionId must be a string of 1 to 128 characters, got an object",
    );
  });

  it("rejects control characters in ids but allows tab and non-ASCII text", () => {
    expect(accept({ ...base("checkout"), userId: "a\tb" }).userId).toBe("a\tb");
    expect(accept({ ...base("checkout"), userId: "usér-😀" }).userId).toBe("usér-😀");
    for (const bad of ["a\nb", "\u0000", "a\u001fb", "a\u007f", "a\u0085"]) {
      expect(reject({ ...base("checkout"), userId: bad })).toStartWith("userId must not contain control characters");
    }
  });

  it("rejects lone surrogates in ids and in free-text fields", () => {
    for (const bad of ["\ud800", "a\udc00b", "x\ud83d"]) {
      expect(reject({ ...base("checkout"), eventId: bad })).toBe("eventId must not contain a lone surrogate (invalid UTF-16)");
      expect(reject({ ...base("page_view"), page: bad })).toBe("page must not contain a lone surrogate (invalid UTF-16)");
    }
    // The same, as it arrives: a JSON escape decodes to a lone surrogate.
    const escaped = `{"eventId":"e","type":"checkout","timestamp":${NOW},"userId":"\\ud800","sessionId":"s"}`;
    expect(reject(JSON.parse(escaped))).toBe("userId must not contain a lone surrogate (invalid UTF-16)");
  });

  it("limits page and referrer to 2048 characters", () => {
    for (const field of ["page", "referrer"]) {
      expect(accept({ ...base("page_view"), [field]: "/".repeat(2048) })[field as "page"]).toHaveLength(2048);
      expect(accept({ ...base("page_view"), [field]: "" })[field as "page"]).toBe("");
      expect(reject({ ...base("page_view"), [field]: "/".repeat(2049) })).toBe(`${field} must be at most 2048 characters, got 2049`);
      expect(reject({ ...base("page_view"), [field]: 7 })).toBe(`${field} must be a string of 0 to 2048 characters, got 7`);
    }
  });

  it("limits utm fields to 256 characters", () => {
    for (const field of ["utmSource", "utmMedium", "utmCampaign"]) {
      expect(accept({ ...base("product_view"), [field]: "g".repeat(256) })[field as "utmSource"]).toHaveLength(256);
      expect(reject({ ...base("product_view"), [field]: "g".repeat(257) })).toBe(`${field} must be at most 256 characters, got 257`);
      expect(reject({ ...base("product_view"), [field]: ["google"] })).toStartWith(`${field} must be a string`);
    }
  });

  it("requires productId on product events and inventory_update and limits it to 128 characters", () => {
    for (const type of ["product_view", "add_to_cart", "remove_from_cart", "inventory_update"] as const) {
      const raw = { ...base(type) };
      delete raw.productId;
      expect(reject(raw)).toBe(`productId is required on ${type}`);
      expect(reject({ ...base(type), productId: "" })).toBe("productId must not be empty");
      expect(reject({ ...base(type), productId: "p".repeat(129) })).toBe("productId must be at most 128 characters, got 129");
      expect(accept({ ...base(type), productId: "p".repeat(128) }).productId).toHaveLength(128);
    }
    expect(accept({ ...base("page_view"), productId: "p9" }).productId).toBe("p9");
    expect(accept(base("page_view")).productId).toBeUndefined();
  });

  it("limits category and orderId to 128 characters", () => {
    expect(accept({ ...base("product_view"), category: "shoes" }).category).toBe("shoes");
    expect(reject({ ...base("product_view"), category: "c".repeat(129) })).toBe("category must be at most 128 characters, got 129");
    expect(accept({ ...base("purchase"), orderId: "o".repeat(128) }).orderId).toHaveLength(128);
    expect(reject({ ...base("purchase"), orderId: "o".repeat(129) })).toBe("orderId must be at most 128 characters, got 129");
    expect(reject({ ...base("purchase"), orderId: 12345 })).toStartWith("orderId must be a string");
  });
});

describe("validateEvent: type", () => {
  it("accepts the seven types and rejects others, including prototype names", () => {
    for (const t of EVENT_TYPES) expect(accept(base(t)).type).toBe(t);
    for (const bad of ["refund", "PAGE_VIEW", "", "__proto__", "constructor", "toString", 3, null]) {
      const r = reject({ ...base("checkout"), type: bad });
      if (bad === null) expect(r).toBe("type is required");
      else expect(r).toStartWith("type must be one of page_view, product_view, add_to_cart, remove_from_cart, checkout, purchase, inventory_update, got");
    }
  });
});

describe("validateEvent: timestamp", () => {
  const at = (timestamp: unknown) => ({ ...base("checkout"), timestamp });

  it("accepts integer epoch milliseconds and rejects fractions and numeric strings", () => {
    expect(accept(at(NOW - 5)).time).toBe(NOW - 5);
    expect(reject(at(NOW - 0.5))).toBe(`timestamp must be an integer number of epoch milliseconds, got ${NOW - 0.5}`);
    expect(reject(at(String(NOW)))).toBe(`timestamp must be a number of epoch milliseconds, not a string, got "${NOW}"`);
    expect(reject(at(true))).toBe("timestamp must be an ISO-8601 string with a zone or epoch milliseconds, got true");
  });

  it("accepts ISO-8601 with Z or an offset and converts to the right epoch ms", () => {
    const cases: [string, number][] = [
      ["2024-05-01T11:00:00Z", Date.UTC(2024, 4, 1, 11)],
      ["2024-05-01T11:00:00.250Z", Date.UTC(2024, 4, 1, 11, 0, 0, 250)],
      ["2024-05-01T11:00:00.5Z", Date.UTC(2024, 4, 1, 11, 0, 0, 500)],
      ["2024-05-01T11:00:00.123456789Z", Date.UTC(2024, 4, 1, 11, 0, 0, 123)],
      ["2024-05-01T11:00Z", Date.UTC(2024, 4, 1, 11)],
      ["2024-05-01T16:30:00+05:30", Date.UTC(2024, 4, 1, 11)],
      ["2024-05-01T03:00:00-08:00", Date.UTC(2024, 4, 1, 11)],
      ["2024-05-01T16:30:00+0530", Date.UTC(2024, 4, 1, 11)],
      ["2024-05-01T13:00:00+02", Date.UTC(2024, 4, 1, 11)],
      ["2024-05-01T11:00:00-00:00", Date.UTC(2024, 4, 1, 11)],
      ["2024-05-01 11:00:00Z", Date.UTC(2024, 4, 1, 11)],
      ["2024-05-01t11:00:00z", Date.UTC(2024, 4, 1, 11)],
      ["2024-05-02T00:30:00+14:00", Date.UTC(2024, 4, 1, 10, 30)],
      ["2024-04-30T23:59:59.999-12:00", Date.UTC(2024, 4, 1, 11, 59, 59, 999)],
      ["2024-02-29T00:00:00Z", Date.UTC(2024, 1, 29)],
      ["2023-12-31T23:00:00-01:00", Date.UTC(2024, 0, 1)],
    ];
    for (const [iso, ms] of cases) expect(accept(at(iso)).time).toBe(ms);
  });

  it("agrees with Date.UTC on random dates and offsets across the retention window", () => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const pad = (v: number, w = 2) => String(v).padStart(w, "0");
    const wide = { ...ctx, maxAgeMs: Infinity, now: Date.UTC(2100, 0, 1) };
    for (let i = 0; i < 2000; i++) {
      const y = 1970 + rnd(130);
      const mo = 1 + rnd(12);
      const d = 1 + rnd(new Date(Date.UTC(y, mo, 0)).getUTCDate());
      const h = rnd(24);
      const mi = rnd(60);
      const s = rnd(60);
      const ms = rnd(1000);
      const offMin = (rnd(2) ? 1 : -1) * rnd(14 * 60);
      const zone = offMin === 0 && rnd(2) ? "Z" : `${offMin < 0 ? "-" : "+"}${pad(Math.floor(Math.abs(offMin) / 60))}:${pad(Math.abs(offMin) % 60)}`;
      const iso = `${y}-${pad(mo)}-${pad(d)}T${pad(h)}:${pad(mi)}:${pad(s)}.${pad(ms, 3)}${zone}`;
      const expected = Date.UTC(y, mo - 1, d, h, mi, s, ms) - offMin * 60_000;
      expect(accept(at(iso), wide).time).toBe(expected);
      expect(Date.parse(iso)).toBe(expected);
    }
  });

  it("rejects ISO strings without a zone and says so", () => {
    for (const s of ["2024-05-01T11:00:00", "2024-05-01T11:00:00.123", "2024-05-01T11:00", "2024-05-01"]) {
      expect(reject(at(s))).toBe(`timestamp "${s}" has no time zone; add Z or an offset like +02:00`);
    }
  });

  it("rejects impossible dates and says which part does not exist", () => {
    for (const [s, why] of [
      ["2023-02-29T00:00:00Z", "2023-02 has 28 days"],
      ["2024-04-31T00:00:00Z", "2024-04 has 30 days"],
      ["2024-05-00T00:00:00Z", "there is no day 00"],
      ["2024-13-01T00:00:00Z", "there is no month 13"],
      ["2024-05-01T24:00:00Z", "hours run from 00 to 23 (write 24:00 as 00:00 of the next day)"],
      ["2024-05-01T11:60:00Z", "minutes run from 00 to 59"],
      ["2024-05-01T11:00:60Z", "seconds run from 00 to 59 (epoch milliseconds have no leap seconds)"],
      ["2024-05-01T11:00:00+24:00", "offsets run from -23:59 to +23:59"],
    ]) {
      expect(reject(at(s))).toBe(`timestamp "${s}" is not a valid date and time: ${why}`);
    }
  });

  it("rejects malformed dates", () => {
    for (const s of [
      "2024-05-01T11:00:00+05:3",
      "2024-05-01T11:00:00.Z",
      "2024-05-01T11:00:00ZZ",
      "2024-05-01T11",
      "2024/05/01T11:00:00Z",
      "20240501T110000Z",
      "May 1, 2024 11:00 GMT",
      "",
      "x".repeat(5000),
    ]) {
      const r = reject(at(s));
      expect(r).toStartWith("timestamp must be ISO-8601 with a zone (e.g. 2024-05-01T12:00:00Z) or epoch milliseconds, got");
      expect(r.length).toBeLessThan(200);
    }
  });

  it("accepts up to 10 minutes in the future and rejects later", () => {
    expect(accept(at(NOW + 10 * 60_000)).time).toBe(NOW + 600_000);
    expect(reject(at(NOW + 10 * 60_000 + 1))).toBe(
      "timestamp 2024-05-01T12:10:00.001Z is more than 10 minutes in the future (now 2024-05-01T12:00:00.000Z)",
    );
    expect(accept(at("2024-05-01T14:10:00+02:00")).time).toBe(NOW + 600_000);
    expect(reject(at("2024-05-01T14:10:00.001+02:00"))).toStartWith("timestamp 2024-05-01T12:10:00.001Z is more than 10 minutes");
    expect(reject(at(1e300))).toStartWith("timestamp 1e+300 is out of range: times run from 1970-01-01T00:00:00.000Z");
  });

  it("accepts back to the retention horizon and rejects older, hinting at epoch seconds", () => {
    const horizon = NOW - 400 * DAY;
    expect(accept(at(horizon)).time).toBe(horizon);
    expect(reject(at(horizon - 1))).toBe(`timestamp ${new Date(horizon - 1).toISOString()} is older than the retention horizon ${new Date(horizon).toISOString()}`);
    expect(reject(at(Math.floor(NOW / 1000)))).toEndWith("(it looks like epoch seconds; send milliseconds)");
    expect(reject(at("1999-01-01T00:00:00Z"))).toStartWith("timestamp 1999-01-01T00:00:00.000Z is older than the retention horizon");
    expect(reject(at(-1e300))).toStartWith("timestamp -1e+300 is out of range");
  });
});

describe("validateEvent: numbers and money", () => {
  it("accepts loadTimeMs from 0 to 600000 and rejects others", () => {
    for (const v of [0, 123.5, 600_000]) expect(accept({ ...base("page_view"), loadTimeMs: v }).loadTimeMs).toBe(v);
    for (const v of [-1, 600_001, "100", Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(reject({ ...base("page_view"), loadTimeMs: v })).toStartWith("loadTimeMs must be a number from 0 to 600000, got");
    }
  });

  it("defaults quantity to 1 on cart events and checks it is an integer from 1 to 10000", () => {
    expect(accept(base("add_to_cart")).quantity).toBe(1);
    expect(accept(base("remove_from_cart")).quantity).toBe(1);
    expect(accept(base("product_view")).quantity).toBeUndefined();
    for (const v of [1, 3, 10_000]) expect(accept({ ...base("add_to_cart"), quantity: v }).quantity).toBe(v);
    expect(reject({ ...base("add_to_cart"), quantity: "3" })).toBe('quantity must be an integer from 1 to 10000, got "3"');
    for (const v of [0, -1, 1.5, 10_001]) {
      expect(reject({ ...base("remove_from_cart"), quantity: v })).toBe(`quantity must be an integer from 1 to 10000, got ${v}`);
    }
  });

  it("converts prices to integer cents", () => {
    const cases: [number, number][] = [
      [19.99, 1999],
      [0, 0],
      [0.01, 1],
      [0.1 + 0.2, 30],
      [0.30000000000000004, 30],
      [1.1 * 3, 330],
      [5, 500],
      [9_999_999.99, 999_999_999],
      [10_000_000, 1_000_000_000],
    ];
    for (const [price, c] of cases) expect(accept({ ...base("product_view"), price }).priceCents).toBe(c);
  });

  it("reads every 2-decimal amount written as text to exactly its cents", () => {
    const amounts: number[] = [];
    for (let c = 0; c < 200_000; c++) amounts.push(c);
    for (let c = 999_800_000; c <= 1_000_000_000; c += 7) amounts.push(c);
    for (const c of amounts) {
      const text = `${Math.floor(c / 100)}.${String(c % 100).padStart(2, "0")}`;
      expect(accept({ ...base("product_view"), price: Number(text) }).priceCents).toBe(c);
    }
  });

  it("rejects prices with more than 2 decimals, out of range or of the wrong type", () => {
    for (const price of [19.999, 1.005, 0.001, 0.015, 9_999_999.995]) {
      expect(reject({ ...base("product_view"), price })).toBe(`price must have at most 2 decimals, got ${price}`);
    }
    for (const price of [-0.01, 10_000_000.01, "19.99", Number.NaN, [], true]) {
      expect(reject({ ...base("product_view"), price })).toStartWith("price must be a number from 0 to 10000000, got");
    }
  });

  it("requires stock on inventory_update as an integer from 0 to 2^31-1", () => {
    const raw = { ...base("inventory_update") };
    delete raw.stock;
    expect(reject(raw)).toBe("stock is required on inventory_update");
    for (const v of [0, 2 ** 31 - 1]) expect(accept({ ...base("inventory_update"), stock: v }).stock).toBe(v);
    for (const v of [-1, 2 ** 31, 1.5, "7"]) {
      expect(reject({ ...base("inventory_update"), stock: v })).toStartWith("stock must be an integer from 0 to 2147483647, got");
    }
  });
});

describe("validateEvent: purchase", () => {
  const item = (o: Raw) => ({ productId: "p1", price: 1, quantity: 1, ...o });

  it("requires 1 to 500 items and converts each", () => {
    const p = base("purchase");
    delete p.items;
    expect(reject(p)).toBe("items is required on purchase");
    expect(reject({ ...base("purchase"), items: [] })).toBe("items must have 1 to 500 entries, got 0");
    expect(reject({ ...base("purchase"), items: Array.from({ length: 501 }, () => item({})) })).toBe(
      "items must have 1 to 500 entries, got 501",
    );
    expect(reject({ ...base("purchase"), items: { productId: "p1" } })).toBe("items must be an array of 1 to 500 items, got an object");
    const many = Array.from({ length: 500 }, (_, i) => item({ productId: `p${i}`, price: i / 100, quantity: 1 + (i % 7) }));
    const got = accept({ ...base("purchase"), items: many }).items ?? [];
    expect(got).toHaveLength(500);
    for (let i = 0; i < 500; i++) expect(got[i]).toStrictEqual({ productId: `p${i}`, priceCents: i, quantity: 1 + (i % 7) });
  });

  it("checks every item field and names the item in the reason", () => {
    const items = (bad: Raw) => ({ ...base("purchase"), items: [item({}), bad] });
    expect(reject({ ...base("purchase"), items: [item({}), "p2"] })).toBe('items[1] must be an object, got "p2"');
    expect(reject({ ...base("purchase"), items: [item({}), [1]] })).toBe("items[1] must be an object, got an array");
    expect(reject(items({ price: 1, quantity: 1 }))).toBe("items[1].productId is required");
    expect(reject(items({ productId: "p", quantity: 1 }))).toBe("items[1].price is required");
    expect(reject(items({ productId: "p", price: 1 }))).toBe("items[1].quantity is required");
    expect(reject(items(item({ productId: "" })))).toBe("items[1].productId must not be empty");
    expect(reject(items(item({ price: 2.999 })))).toBe("items[1].price must have at most 2 decimals, got 2.999");
    expect(reject(items(item({ quantity: 0 })))).toBe("items[1].quantity must be an integer from 1 to 10000, got 0");
    expect(reject(items(item({ category: "c".repeat(129) })))).toBe("items[1].category must be at most 128 characters, got 129");
    expect(accept(items(item({ category: "shoes", price: 0.1 + 0.2 }))).items?.[1]).toStrictEqual({
      productId: "p1",
      priceCents: 30,
      quantity: 1,
      category: "shoes",
    });
  });

  it("defaults currency to the reporting currency and rejects another one", () => {
    expect(accept(base("purchase")).currency).toBe("USD");
    expect(accept({ ...base("purchase"), currency: "usd" }).currency).toBe("USD");
    expect(accept({ ...base("purchase"), currency: "Usd" }, { ...ctx, currency: "usd" }).currency).toBe("USD");
    expect(reject({ ...base("purchase"), currency: "EUR" })).toBe('currency "EUR" is not the reporting currency USD');
    expect(reject({ ...base("purchase"), currency: 840 })).toBe("currency must be a string, got 840");
    expect(accept(base("purchase"), { ...ctx, currency: "EUR" }).currency).toBe("EUR");
  });
});

describe("validateEvent: hostile input", () => {
  it("does not let __proto__ or constructor keys pollute anything", () => {
    const text =
      '{"eventId":"e1","type":"checkout","timestamp":' +
      (NOW - 1) +
      ',"userId":"u","sessionId":"s","__proto__":{"polluted":true,"userId":"evil"},"constructor":{"prototype":{"polluted":true}}}';
    const e = accept(JSON.parse(text));
    expect(Object.getPrototypeOf(e)).toBe(Object.prototype);
    expect(Object.keys(e).sort()).toEqual(["eventId", "sessionId", "time", "type", "userId"]);
    expect(e.userId).toBe("u");
    expect(({} as Raw).polluted).toBeUndefined();
    expect((e as unknown as Raw).polluted).toBeUndefined();
    const withItems = accept(
      JSON.parse(
        `{"eventId":"e2","type":"purchase","timestamp":${NOW - 1},"userId":"u","sessionId":"s","items":[{"productId":"p","price":1,"quantity":1,"__proto__":{"x":1}}]}`,
      ),
    );
    expect(Object.keys(withItems.items?.[0] ?? {}).sort()).toEqual(["priceCents", "productId", "quantity"]);
    expect(Object.getPrototypeOf(withItems.items?.[0])).toBe(Object.prototype);
  });

  it("ignores deeply nested unknown fields", () => {
    const depth = 5000;
    const text = `{"eventId":"e","type":"checkout","timestamp":${NOW},"userId":"u","sessionId":"s","junk":${"[".repeat(depth)}${"]".repeat(depth)}}`;
    const parsed = parseBody(bytesOf(text), "application/json");
    const items = itemsOf(parsed);
    expect(items).toHaveLength(1);
    expect(accept(items[0].value).eventId).toBe("e");
  });

  it("rejects very long strings with a short reason that echoes little of the input", () => {
    const huge = "A".repeat(10_000_000);
    for (const field of ["eventId", "userId", "page", "utmSource", "productId", "category", "orderId"]) {
      const r = reject({ ...base("purchase"), productId: "p", [field]: huge });
      expect(r).toStartWith(field);
      expect(r.length).toBeLessThan(100);
    }
    const long = `${"B".repeat(100)}\u0001`;
    const r = reject({ ...base("checkout"), eventId: long.slice(0, 128) });
    expect(r).toStartWith("eventId must not contain control characters");
    expect(r.match(/B/g)?.length).toBe(64);
    expect(reject({ ...base("checkout"), type: "T".repeat(1000) }).match(/T/g)?.length).toBe(64);
  });

  it("never throws, even on objects that throw when read", () => {
    const trap = new Proxy({}, {
      get() {
        throw new Error("boom");
      },
    });
    expect(reject(trap)).toBe("event could not be read: boom");
    const getter = Object.defineProperty({ ...base("checkout") }, "userId", {
      get() {
        throw new TypeError("nope");
      },
    });
    expect(reject(getter)).toBe("event could not be read: nope");
  });

  it("starts every reason with the field it is about", () => {
    const cases: [string, Raw][] = [
      ["eventId", { eventId: 1 }],
      ["type", { type: "x" }],
      ["timestamp", { timestamp: "2024-01-01T00:00:00" }],
      ["userId", { userId: "" }],
      ["page", { page: 1 }],
      ["loadTimeMs", { loadTimeMs: -1 }],
      ["price", { price: "1" }],
      ["quantity", { quantity: 0 }],
      ["orderId", { orderId: [] }],
      ["currency", { currency: "GBP" }],
      ["items", { items: 1 }],
      ["stock", { stock: -1 }],
      ["category", { category: 1 }],
      ["referrer", { referrer: false }],
      ["utmMedium", { utmMedium: 1 }],
      ["utmCampaign", { utmCampaign: 1 }],
    ];
    for (const [field, patch] of cases) expect(reject({ ...base("purchase"), productId: "p", ...patch })).toStartWith(field);
  });
});

describe("toWire", () => {
  it("round-trips an event of every type, with every optional field", () => {
    const full: Raw = {
      userId: "u9",
      sessionId: "s9",
      page: "/p?q=1",
      referrer: "https://ref.example/",
      utmSource: "google",
      utmMedium: "cpc",
      utmCampaign: "spring",
      loadTimeMs: 87.5,
      productId: "p7",
      category: "shoes",
      price: 0.1 + 0.2,
      quantity: 4,
      orderId: "o1",
      currency: "usd",
      items: [
        { productId: "a", price: 19.99, quantity: 2, category: "c" },
        { productId: "b", price: 9_999_999.99, quantity: 10_000 },
      ],
      stock: 12,
    };
    for (const type of EVENT_TYPES) {
      for (const raw of [base(type), { ...base(type), ...full, timestamp: "2024-05-01T13:00:00+02:00" }]) {
        const e = accept(raw);
        const wire = toWire(e);
        const back = accept(JSON.parse(wire));
        expect(back).toStrictEqual(e);
        const w = JSON.parse(wire) as Raw;
        expect(typeof w.timestamp).toBe("number");
        expect(w.time).toBeUndefined();
        expect(w.priceCents).toBeUndefined();
      }
    }
  });

  it("writes price in currency units with at most 2 decimals and drops unknown fields", () => {
    const e = accept({ ...base("product_view"), price: 0.1 + 0.2, junk: 1 });
    expect(toWire(e)).toBe(`{"eventId":"e-product_view","type":"product_view","timestamp":${NOW - 1000},"userId":"u1","sessionId":"s1","productId":"p1","price":0.3}`);
    const p = accept({ ...base("purchase"), items: [{ productId: "x", price: 19.99, quantity: 1 }] });
    expect(toWire(p)).toContain('"items":[{"productId":"x","price":19.99,"quantity":1}]');
    for (let c = 0; c < 100_000; c += 1) {
      const s = JSON.stringify(c / 100);
      const dot = s.indexOf(".");
      expect(dot < 0 || s.length - dot - 1 <= 2).toBe(true);
    }
  });
});

describe("parseBody", () => {
  const ev = (i: number) => JSON.stringify({ ...base("checkout"), eventId: `e${i}` });

  it("reads an application/json object as one item and an array as a batch", () => {
    expect(itemsOf(parseBody(bytesOf(ev(0)), "application/json"))).toStrictEqual([{ index: 0, value: JSON.parse(ev(0)) }]);
    const arr = [ev(0), "5", "null", ev(3)];
    const items = itemsOf(parseBody(bytesOf(`[${arr.join(",")}]`), "Application/JSON; charset=utf-8"));
    expect(items).toStrictEqual(arr.map((s, index) => ({ index, value: JSON.parse(s) })));
    expect(itemsOf(parseBody(bytesOf("[]"), "application/json"))).toEqual([]);
  });

  it("refuses malformed JSON, invalid UTF-8 and too many events for application/json", () => {
    const bad = parseBody(bytesOf('{"eventId": '), "application/json");
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect([bad.status, bad.code]).toEqual([400, "malformed_json"]);
      expect(bad.message).toStartWith("body is not valid JSON");
    }
    expect(parseBody(new Uint8Array(0), "application/json")).toMatchObject({ ok: false, status: 400, code: "malformed_json" });
    expect(parseBody(concat('{"eventId":"', [0xc3, 0x28], '"}'), "application/json")).toMatchObject({
      ok: false,
      status: 400,
      code: "invalid_utf8",
    });
    const three = bytesOf(`[${ev(0)},${ev(1)},${ev(2)}]`);
    expect(parseBody(three, "application/json", { maxEvents: 2 })).toMatchObject({ ok: false, status: 413, code: "too_many_events" });
    expect(itemsOf(parseBody(three, "application/json", { maxEvents: 3 }))).toHaveLength(3);
  });

  it("refuses a missing or unsupported content type", () => {
    for (const ct of [null, "", "application/xml", "text/html", "multipart/form-data; boundary=x", "application/jsonx"]) {
      expect(parseBody(bytesOf(ev(0)), ct)).toMatchObject({ ok: false, status: 415, code: "unsupported_media_type" });
    }
  });

  it("tolerates a leading UTF-8 BOM", () => {
    for (const ct of ["application/json", "application/x-ndjson", "text/plain"]) {
      const items = itemsOf(parseBody(concat([0xef, 0xbb, 0xbf], ev(0)), ct));
      expect(items).toStrictEqual([{ index: 0, value: JSON.parse(ev(0)) }]);
    }
    // Invalid bytes elsewhere send NDJSON down the per-line path, which must also skip the BOM.
    const items = itemsOf(parseBody(concat([0xef, 0xbb, 0xbf], ev(0), "\n", [0xff], "\n", ev(2)), "application/x-ndjson"));
    expect(items.map((i) => i.error ?? (i.value as Raw).eventId)).toEqual(["e0", "line is not valid UTF-8", "e2"]);
  });

  it("splits NDJSON into one item per non-blank line, numbering events not lines", () => {
    const body = `${ev(0)}\n\n  \r\n${ev(1)}\r\n${ev(2)}\n`;
    const items = itemsOf(parseBody(bytesOf(body), "application/x-ndjson"));
    expect(items).toStrictEqual([0, 1, 2].map((index) => ({ index, value: JSON.parse(ev(index)) })));
    expect(itemsOf(parseBody(new Uint8Array(0), "application/x-ndjson"))).toEqual([]);
  });

  it("turns a malformed NDJSON line or an array line into an item error and keeps the rest", () => {
    const items = itemsOf(parseBody(bytesOf(`${ev(0)}\n{"eventId":\n[${ev(2)}]\n"str"\n${ev(4)}`), "application/x-ndjson"));
    expect(items.map((i) => i.index)).toEqual([0, 1, 2, 3, 4]);
    const raw = parseBody(bytesOf('{"eventId":"r1","x":1}\n'), "application/x-ndjson");
    expect(raw.ok && raw.items[0].raw).toBe('{"eventId":"r1","x":1}');
    expect(items[1].error).toStartWith("malformed JSON: ");
    expect(items[2].error).toBe("line is a JSON array; NDJSON carries one event per line");
    expect(items[3]).toStrictEqual({ index: 3, value: "str" });
    expect((items[4].value as Raw).eventId).toBe("e4");
  });

  it("reports an invalid UTF-8 line and still parses the others", () => {
    const body = concat(ev(0), "\n", '{"eventId":"', [0xe2, 0x82], '"}\n', `{"eventId":"é"}`, "\n", ev(3));
    for (const ct of ["application/x-ndjson", "text/plain"]) {
      const items = itemsOf(parseBody(body, ct));
      expect(items.map((i) => i.error ?? (i.value as Raw).eventId)).toEqual(["e0", "line is not valid UTF-8", "é", "e3"]);
    }
  });

  it("errors a line longer than maxLineBytes, counting bytes not characters", () => {
    const wide = JSON.stringify({ eventId: "é".repeat(100) }); // 2 bytes per "é", longer than the other lines
    const narrow = JSON.stringify({ eventId: "e".repeat(200) });
    const bodies: [string, Uint8Array, string][] = [
      ["ASCII body", bytesOf(`${ev(0)}\n${narrow}\n${ev(2)}`), narrow],
      ["non-ASCII body", bytesOf(`${ev(0)}\n${wide}\n${ev(2)}`), wide],
      ["body with an invalid byte", concat(ev(0), "\n", wide, "\n", ev(2), "\n", [0xff]), wide],
    ];
    for (const [, body, long] of bodies) {
      const size = bytesOf(long).length;
      expect(size).toBeGreaterThan(long.length === size ? 0 : long.length);
      const cut = itemsOf(parseBody(body, "application/x-ndjson", { maxLineBytes: size - 1 }));
      expect(cut.slice(0, 3)).toStrictEqual([
        { index: 0, value: JSON.parse(ev(0)) },
        { index: 1, error: `line is longer than ${size - 1} bytes` },
        { index: 2, value: JSON.parse(ev(2)) },
      ]);
      const fits = itemsOf(parseBody(body, "application/x-ndjson", { maxLineBytes: size }));
      expect(fits[1]).toStrictEqual({ index: 1, value: JSON.parse(long) });
    }
  });

  it("refuses NDJSON with more than maxEvents events", () => {
    const body = bytesOf([0, 1, 2].map(ev).join("\n\n"));
    expect(parseBody(body, "application/x-ndjson", { maxEvents: 2 })).toMatchObject({ ok: false, status: 413, code: "too_many_events" });
    expect(itemsOf(parseBody(body, "application/x-ndjson", { maxEvents: 3 }))).toHaveLength(3);
    const bad = concat(body, "\n", [0xff]); // a fourth line, on the per-line decoding path
    expect(parseBody(bad, "application/x-ndjson", { maxEvents: 3 })).toMatchObject({ ok: false, status: 413 });
  });

  it("reads text/plain as JSON when the whole body parses, else as NDJSON", () => {
    const arr = itemsOf(parseBody(bytesOf(`[${ev(0)},${ev(1)}]`), "text/plain;charset=UTF-8"));
    expect(arr.map((i) => (i.value as Raw).eventId)).toEqual(["e0", "e1"]);
    const nd = itemsOf(parseBody(bytesOf(`${ev(0)}\n${ev(1)}\nnope`), "text/plain"));
    expect(nd.map((i) => i.error ?? (i.value as Raw).eventId)).toEqual(["e0", "e1", nd[2].error]);
    expect(nd[2].error).toStartWith("malformed JSON: ");
    // Under NDJSON rules a line holding an array is an error; under JSON rules the whole-body array is a batch.
    expect(itemsOf(parseBody(bytesOf(`[${ev(0)}]`), "application/x-ndjson"))[0].error).toBeDefined();
    expect(itemsOf(parseBody(bytesOf(`[${ev(0)}]`), "text/plain"))[0].value).toStrictEqual(JSON.parse(ev(0)));
  });
});

describe("the door end to end", () => {
  it("accepts exactly the valid events of a mixed batch, with their indexes", () => {
    const good = (i: number, type: EventType = "checkout") => JSON.stringify({ ...base(type), eventId: `ok${i}` });
    // [line bytes, valid?] — validity is decided here by construction, not by the code under test.
    const lines: [string | Uint8Array, boolean][] = [
      [good(0), true],
      ['{"eventId":"m1","type":', false],
      // Known fields are checked on every type, so a bad quantity on checkout is refused too.
      [JSON.stringify({ ...base("checkout"), quantity: "3" }), false],
      [JSON.stringify({ ...base("add_to_cart"), quantity: "3" }), false],
      [JSON.stringify({ ...base("checkout"), userId: undefined }), false],
      [JSON.stringify({ ...base("checkout"), type: "refund" }), false],
      [good(6, "purchase"), true],
      [JSON.stringify({ ...base("checkout"), timestamp: NOW + DAY }), false],
      [JSON.stringify({ ...base("checkout"), timestamp: NOW - 500 * DAY }), false],
      [JSON.stringify({ ...base("checkout"), eventId: "x".repeat(129) }), false],
      [JSON.stringify({ ...base("page_view"), page: "/".repeat(5000) }), false],
      [concat('{"eventId":"u', [0xc0, 0xaf], '","type":"checkout"}'), false],
      [`{"__proto__":{"eventId":"evil"},"constructor":{"prototype":{"x":1}},${good(12).slice(1)}`, true],
      [good(13, "inventory_update"), true],
      ["[1,2]", false],
      [JSON.stringify({ ...base("purchase"), currency: "EUR" }), false],
      [good(16, "page_view"), true],
    ];
    const body = concat(...lines.flatMap(([l], i) => [typeof l === "string" ? l : Array.from(l), i < lines.length - 1 ? "\n\n" : ""]));
    const items = itemsOf(parseBody(body, "application/x-ndjson"));
    expect(items.map((i) => i.index)).toEqual(lines.map((_, i) => i));
    const accepted: number[] = [];
    const rejected: number[] = [];
    for (const it of items) {
      const v = it.error === undefined ? validateEvent(it.value, ctx) : { ok: false as const, reason: it.error };
      (v.ok ? accepted : rejected).push(it.index);
      if (!v.ok) expect(v.reason.length).toBeLessThan(200);
    }
    const expectedAccepted = lines.flatMap(([, valid], i) => (valid ? [i] : []));
    expect(accepted).toEqual(expectedAccepted);
    expect(rejected.length + accepted.length).toBe(lines.length);
    expect(({} as Raw).x).toBeUndefined();
  });

  it("prints parse + validate throughput for 100k NDJSON lines", () => {
    const n = 100_000;
    const lines: string[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const type = EVENT_TYPES[i % 4];
      const raw: Raw = { ...base(type), eventId: `ev-${i}`, userId: `u${i % 5000}`, sessionId: `s${i % 20_000}` };
      if (i % 2 === 0) raw.timestamp = new Date(NOW - i).toISOString();
      if (type !== "page_view" && type !== "checkout") raw.price = 29.99;
      lines[i] = JSON.stringify(raw);
    }
    const body = bytesOf(lines.join("\n"));
    const t0 = performance.now();
    const items = itemsOf(parseBody(body, "application/x-ndjson", { maxEvents: n }));
    let ok = 0;
    for (const it of items) if (validateEvent(it.value, ctx).ok) ok++;
    const ms = performance.now() - t0;
    expect(ok).toBe(n);
    console.log(`parse+validate: ${Math.round((n / ms) * 1000).toLocaleString()} events/s (${(body.length / n).toFixed(0)} B/event)`);
  });
});

describe("event types", () => {
  it("lists the types in the same order as the window layer's record kinds", async () => {
    const { TYPES } = await import("../window/index.ts");
    const { EVENT_TYPES } = await import("./event-types.ts");
    expect([...TYPES]).toEqual([...EVENT_TYPES]);
  });
});
