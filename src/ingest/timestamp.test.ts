// Properties of the shared time parser over seeded random inputs, against an oracle of its own (days counted from
// year lengths, never Date.parse), and the same inputs through the door, the read API and the dashboard.

import { describe, expect, it } from "bun:test";
import { createPrng, type Prng } from "../generator/index.ts";
import { parseTime } from "../server/params.ts";
import { parseDashboardTime } from "../views/range.ts";
import { rejectReason } from "./door.ts";
import { validateEvent } from "./event.ts";
import { TIME_MAX, TIME_MIN, parseTimestamp, type TimestampCode } from "./timestamp.ts";

const SEED = 20_240_501;
const N = 3000;
const DAY = 86_400_000;

// ---------------------------------------------------------------------------------------------
// oracle: days from 0000-01-01 by counting leap years, not by the parser's era arithmetic

const isLeap = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const monthDays = (y: number, m: number) => (m === 2 && isLeap(y) ? 29 : MONTH_DAYS[m - 1]);
/** Days from 0000-01-01 to y-01-01: 365 per year plus one per leap year in [0, y) (year 0 is a leap year). */
const daysBeforeYear = (y: number) => 365 * y + Math.ceil(y / 4) - Math.ceil(y / 100) + Math.ceil(y / 400);
const EPOCH_DAYS = daysBeforeYear(1970);

interface Fields {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  /** 0 to 9 fraction digits, as written */
  fraction: string;
  /** offset in minutes east of UTC, or null for no zone */
  offset: number | null;
}

function oracleMs(f: Fields): number {
  let days = daysBeforeYear(f.year) - EPOCH_DAYS;
  for (let m = 1; m < f.month; m++) days += monthDays(f.year, m);
  days += f.day - 1;
  const ms = f.fraction === "" ? 0 : Number(f.fraction.slice(0, 3).padEnd(3, "0"));
  return days * DAY + f.hour * 3_600_000 + f.minute * 60_000 + f.second * 1000 + ms - (f.offset ?? 0) * 60_000;
}

// ---------------------------------------------------------------------------------------------
// generators

const pad = (v: number, w = 2) => String(v).padStart(w, "0");
const pick = <T>(r: Prng, xs: readonly T[]): T => xs[r.int(xs.length)];

function randomYear(r: Prng): number {
  // the edges and the century rules get extra weight
  if (r.chance(0.2)) return pick(r, [1970, 1971, 1999, 2000, 2024, 2100, 2400, 9999]);
  return r.between(1970, 9999);
}

function validFields(r: Prng, zoned: boolean): Fields {
  const year = randomYear(r);
  const month = r.between(1, 12);
  return {
    year,
    month,
    day: r.chance(0.2) ? monthDays(year, month) : r.between(1, monthDays(year, month)),
    hour: r.chance(0.1) ? pick(r, [0, 23]) : r.int(24),
    minute: r.chance(0.1) ? pick(r, [0, 59]) : r.int(60),
    second: r.chance(0.1) ? pick(r, [0, 59]) : r.int(60),
    fraction: Array.from({ length: r.int(10) }, () => String(r.int(10))).join(""),
    offset: zoned ? (r.chance(0.3) ? 0 : (r.chance(0.5) ? 1 : -1) * (r.chance(0.1) ? 23 * 60 + 59 : r.int(15 * 60))) : null,
  };
}

/** ISO-8601 text of the fields, in one of the accepted spellings. */
function write(r: Prng, f: Fields, opts: { seconds?: boolean } = {}): string {
  const sep = pick(r, ["T", "T", "T", "t", " "]);
  const secs = opts.seconds ?? (f.second !== 0 || f.fraction !== "" || r.chance(0.7));
  let s = `${pad(f.year, 4)}-${pad(f.month)}-${pad(f.day)}${sep}${pad(f.hour)}:${pad(f.minute)}`;
  if (secs) s += `:${pad(f.second)}` + (f.fraction ? pick(r, [".", ".", ","]) + f.fraction : "");
  if (f.offset === null) return s;
  const o = f.offset;
  if (o === 0 && r.chance(0.7)) return s + pick(r, ["Z", "Z", "z"]);
  const sign = o < 0 || (o === 0 && r.chance(0.5)) ? "-" : "+";
  const hh = pad(Math.floor(Math.abs(o) / 60));
  const mm = pad(Math.abs(o) % 60);
  if (mm === "00" && r.chance(0.3)) return s + sign + hh;
  return s + sign + hh + (r.chance(0.5) ? ":" : "") + mm;
}

interface Case {
  /** the query-string text; the door gets doorValue(input) */
  input: string | number;
  /** expected epoch ms, or the refusal code */
  expect: number | TimestampCode;
  /** the dashboard's reading when it differs (zone-less read as UTC) */
  dashboard?: number | TimestampCode;
}

const inRange = (t: number) => t >= TIME_MIN && t <= TIME_MAX;

function validIsoCase(r: Prng): Case {
  const f = validFields(r, true);
  if (r.chance(0.1)) {
    // the first and last day of the range, where an offset decides whether the instant is inside it
    const last = r.chance(0.5);
    Object.assign(f, last ? { year: 9999, month: 12, day: 31, hour: 23 } : { year: 1970, month: 1, day: 1, hour: 0 });
  }
  const t = oracleMs(f);
  // an offset can push the first or last minutes of the range outside it
  return { input: write(r, f), expect: inRange(t) ? t : "out_of_range" };
}

function zonelessCase(r: Prng): Case {
  const f = validFields(r, false);
  const t = oracleMs(f);
  const dateOnly = r.chance(0.1);
  const input = dateOnly ? `${pad(f.year, 4)}-${pad(f.month)}-${pad(f.day)}` : write(r, f);
  const utc = dateOnly ? oracleMs({ ...f, hour: 0, minute: 0, second: 0, fraction: "" }) : t;
  return { input, expect: "no_zone", dashboard: utc };
}

function epochCase(r: Prng): Case {
  const t = r.chance(0.1) ? pick(r, [TIME_MIN, TIME_MAX, 1, TIME_MAX - 1]) : Math.floor(r.next() * (TIME_MAX + 1));
  return { input: r.chance(0.5) ? t : String(t), expect: t };
}

/** A valid zoned date with one field replaced by something that does not exist. */
function impossibleCase(r: Prng): Case {
  const f = validFields(r, true);
  switch (r.int(7)) {
    case 0:
      f.day = 0;
      break;
    case 1: {
      // day 29-31 of a month that is shorter, Feb 29 of non-leap years (1900 and 2100 are not leap years) included
      if (r.chance(0.4)) {
        f.year = pick(r, [1900, 2100, 2200, 2300, 2023, 2025, 9999]);
        f.month = 2;
      } else f.month = pick(r, [2, 4, 6, 9, 11]);
      f.day = r.between(monthDays(f.year, f.month) + 1, 31);
      break;
    }
    case 2:
      f.day = r.between(32, 99);
      break;
    case 3:
      f.month = pick(r, [0, 13, r.between(13, 99)]);
      f.day = 1;
      break;
    case 4:
      f.hour = r.chance(0.5) ? 24 : r.between(24, 99);
      break;
    case 5:
      f.minute = r.between(60, 99);
      break;
    case 6:
      f.second = r.chance(0.5) ? 60 : r.between(60, 99); // a leap second is refused too
      return { input: write(r, f, { seconds: true }), expect: "invalid_date" };
  }
  return { input: write(r, f), expect: "invalid_date" };
}

const UNICODE_DIGITS = ["\uff11", "\u0661", "\u0967", "\u09e7", "\u{1d7d9}", "\u00b9"]; // fullwidth, Arabic-Indic, Devanagari, Bengali, math, superscript
const GARBAGE = [" ", "x", "Z", ":", ".", "\n", "\t", "\u0000", "é", "\u200b", "+", "-", "T", "🙂"];

function malformedCase(r: Prng): Case {
  const good = write(r, validFields(r, true));
  switch (r.int(14)) {
    case 0:
      return { input: good + pick(r, GARBAGE), expect: "invalid_format" }; // trailing garbage (never a digit)
    case 1:
      return { input: pick(r, GARBAGE) + good, expect: "invalid_format" };
    case 2: {
      // one ASCII digit replaced by a non-ASCII digit
      const at = [...good].findIndex((c, i) => i > r.int(10) && c >= "0" && c <= "9");
      const i = at < 0 ? 0 : at;
      return { input: good.slice(0, i) + pick(r, UNICODE_DIGITS) + good.slice(i + 1), expect: "invalid_format" };
    }
    case 3: {
      const f = validFields(r, false);
      const base = `${pad(f.year, 4)}-${pad(f.month)}-${pad(f.day)}T${pad(f.hour)}:${pad(f.minute)}:${pad(f.second)}`;
      const off = pick(r, ["+5", "+05:3", "+05:", "+0530x", "++05:00", "+05:00:00", "+5:30", "+053", "-", "+", "UTC", "GMT", "+05:30Z", "Z+01:00", "+١٢:٠٠"]);
      return { input: base + off, expect: "invalid_format" };
    }
    case 4: {
      const f = validFields(r, false);
      const base = `${pad(f.year, 4)}-${pad(f.month)}-${pad(f.day)}T${pad(f.hour)}:${pad(f.minute)}`;
      const hh = r.between(24, 99);
      return { input: `${base}${pick(r, ["+", "-"])}${pad(hh)}:${pad(r.int(60))}`, expect: "invalid_date" };
    }
    case 5: {
      const f = validFields(r, true);
      f.fraction = Array.from({ length: r.between(10, 20) }, () => String(r.int(10))).join("");
      return { input: write(r, f, { seconds: true }), expect: "invalid_format" }; // fraction digits past nanoseconds
    }
    case 6:
      return { input: pick(r, ["NaN", "Infinity", "-Infinity", "1e400", "1e21", "8.64e15", "-0.0", "0x10", "1_000", " 1", "1 ", "1.0", "+1", "1,000", "", " ", "null", "true", "undefined", "٣"]), expect: "invalid_format" };
    case 7: {
      // digit strings past 16 digits and up to the length cap: refused whatever their value
      const n = r.between(17, 40);
      return { input: Array.from({ length: n }, (_, i) => String(i === 0 ? r.between(1, 9) : r.int(10))).join(""), expect: "out_of_range" };
    }
    case 8:
      return { input: "9".repeat(r.between(41, 5000)), expect: "invalid_format" };
    case 9:
      return { input: "-" + String(r.between(0, 2 ** 40)), expect: "out_of_range" };
    case 10:
      return { input: pick(r, ["10000-01-01T00:00:00Z", "+002024-05-01T00:00:00Z", "-2024-05-01T00:00:00Z", "24-05-01T00:00:00Z", "2024-5-01T00:00:00Z", "2024-05-1T00:00:00Z", "2024/05/01T00:00:00Z", "20240501T000000Z", "2024-05-01T00Z", "2024-05-01T0000Z", "2024-05-01T00:00.5Z", "2024-05-01T00:00:00.Z", "2024-05-01T00:00:0Z", "2024-05-01TT00:00Z", "2024-05-01_00:00Z", "May 1, 2024 00:00 GMT", "Wed, 01 May 2024 00:00:00 GMT"]), expect: "invalid_format" };
    case 11:
      // dates before 1970 and the year 0000 exist on the calendar, but not in epoch ms ≥ 0
      return { input: `${pad(r.between(0, 1969), 4)}-${pad(r.between(1, 12))}-01T00:00:00Z`, expect: "out_of_range" };
    case 12: {
      // numbers a JSON body can carry but the read API never sees as digits
      const n = pick(r, [1e21, 8.64e15, 8.64e15 + 1, 9_999_999_999_999_999, Number.MAX_SAFE_INTEGER, TIME_MAX + 1, -1, -(2 ** 40), Number.MAX_VALUE, -Number.MAX_VALUE]);
      return { input: n, expect: "out_of_range" };
    }
    default: {
      const n = pick(r, [0.5, 1.5, -0.5, TIME_MAX - 0.5, Number.NaN, Infinity, -Infinity, Number.MIN_VALUE, 1e-300]);
      return { input: n, expect: "not_integer" };
    }
  }
}

function cases(label: string, make: (r: Prng) => Case, n = N): Case[] {
  const r = createPrng(SEED, label);
  return Array.from({ length: n }, () => make(r));
}

const show = (c: Case) => `${typeof c.input === "string" ? JSON.stringify(c.input) : String(c.input)} (seed ${SEED})`;

/** What the read API (always text) receives for an input. */
const queryText = (v: string | number) => (typeof v === "string" ? v : String(v));
/** What the door receives: query-string epoch digits are a JSON number there, everything else as is. */
const doorValue = (v: string | number) => (typeof v === "string" && /^\d{1,16}$/.test(v) ? Number(v) : v);

function expectParsed(c: Case, value: unknown, opts: Parameters<typeof parseTimestamp>[1], expected: number | TimestampCode) {
  const got = parseTimestamp(value, opts);
  const summary = got.ok ? got.ms : got.code;
  if (summary !== expected) throw new Error(`${show(c)}: expected ${expected}, got ${summary}${got.ok ? "" : ` (${got.message})`}`);
}

// ---------------------------------------------------------------------------------------------

describe("parseTimestamp", () => {
  it("agrees with the oracle on generated valid dates, offsets and fractions", () => {
    for (const c of cases("valid-iso", validIsoCase)) expectParsed(c, c.input, { epochDigits: true }, c.expect);
  });

  it("uses an oracle that agrees with Date.UTC on the same fields", () => {
    // the oracle is checked against a second, independent implementation (numbers in, never a string)
    const r = createPrng(SEED, "oracle");
    for (let i = 0; i < N; i++) {
      const f = validFields(r, true);
      const ms = f.fraction === "" ? 0 : Number(f.fraction.slice(0, 3).padEnd(3, "0"));
      const utc = new Date(0);
      utc.setUTCFullYear(f.year, f.month - 1, f.day);
      utc.setUTCHours(f.hour, f.minute, f.second, ms);
      expect(oracleMs(f)).toBe(utc.getTime() - (f.offset ?? 0) * 60_000);
    }
  });

  it("accepts epoch milliseconds from 0 to 9999-12-31T23:59:59.999Z as numbers and, when asked, as digit strings", () => {
    for (const c of cases("epoch", epochCase)) expectParsed(c, c.input, { epochDigits: true }, c.expect);
    expect(parseTimestamp(-0)).toEqual({ ok: true, ms: 0 });
    expect(Object.is((parseTimestamp(-0) as { ms: number }).ms, 0)).toBe(true);
    expect(parseTimestamp("0000000000000001", { epochDigits: true })).toEqual({ ok: true, ms: 1 });
  });

  it("refuses impossible days, months, hours, minutes and seconds, Feb 29 of non-leap years and 24:00", () => {
    for (const c of cases("impossible", impossibleCase)) expectParsed(c, c.input, { epochDigits: true }, c.expect);
    for (const s of ["1900-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2023-02-29T00:00Z", "2026-02-30T00:00:00Z", "2024-05-01T24:00Z", "2024-05-01T24:00:00Z"]) {
      expect(parseTimestamp(s).ok).toBe(false);
    }
    // the days that do exist around them
    expect(parseTimestamp("2000-02-29T00:00:00Z")).toEqual({ ok: true, ms: Date.UTC(2000, 1, 29) });
    expect(parseTimestamp("2024-02-29T23:59:59.999Z")).toEqual({ ok: true, ms: Date.UTC(2024, 1, 29, 23, 59, 59, 999) });
  });

  it("refuses malformed text, bad offsets, trailing garbage, unicode digits, huge digit strings and non-integers", () => {
    for (const c of cases("malformed", malformedCase)) expectParsed(c, c.input, { epochDigits: true }, c.expect);
  });

  it("refuses a date-time without a zone unless told to read it as UTC", () => {
    for (const c of cases("zoneless", zonelessCase)) {
      expectParsed(c, c.input, { epochDigits: true }, "no_zone");
      expectParsed(c, c.input, { epochDigits: true, zonelessUtc: true }, inRange(c.dashboard as number) ? (c.dashboard as number) : "out_of_range");
    }
  });

  it("refuses epoch digit strings unless asked, and values that are not strings or numbers", () => {
    expect(parseTimestamp("1714564800000")).toMatchObject({ ok: false, code: "digit_string" });
    expect(parseTimestamp("-5")).toMatchObject({ ok: false, code: "digit_string" });
    expect(parseTimestamp("-5", { epochDigits: true })).toMatchObject({ ok: false, code: "out_of_range" });
    expect(parseTimestamp("-0", { epochDigits: true })).toMatchObject({ ok: false, code: "out_of_range" });
    expect(parseTimestamp("9999999999990000", { epochDigits: true })).toMatchObject({ ok: false, code: "out_of_range" });
    for (const v of [undefined, null]) expect(parseTimestamp(v)).toEqual({ ok: false, code: "missing", message: "timestamp is required" });
    for (const v of [true, {}, [], 10n, Symbol("t"), () => 1, new Date(0)]) expect(parseTimestamp(v)).toMatchObject({ ok: false, code: "wrong_type" });
  });

  it("names the value in every refusal and keeps the message short", () => {
    const r = createPrng(SEED, "messages");
    const all = [...cases("m-impossible", impossibleCase, 300), ...cases("m-malformed", malformedCase, 300), ...cases("m-zoneless", zonelessCase, 100)];
    for (const c of all) {
      const got = parseTimestamp(c.input, { name: "from", epochDigits: r.chance(0.5) });
      if (got.ok) throw new Error(`${show(c)} accepted`);
      expect(got.message).toStartWith("from ");
      expect(got.message.length).toBeLessThan(240);
    }
  });

  it("returns only values whose Date, its ISO text and a retention later, are valid and parse back to the same value", () => {
    const accepted = [...cases("rt-iso", validIsoCase), ...cases("rt-epoch", epochCase)];
    for (const c of accepted) {
      const got = parseTimestamp(c.input, { epochDigits: true });
      if (!got.ok) continue;
      const iso = new Date(got.ms).toISOString();
      expect(iso).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(parseTimestamp(iso)).toEqual({ ok: true, ms: got.ms });
      // a query rounds `to` up to a step or an hour, or widens it by retention: still a Date
      expect(() => new Date(got.ms + 400 * DAY).toISOString()).not.toThrow();
      expect(() => new Date(got.ms - 400 * DAY).toISOString()).not.toThrow();
    }
    expect(new Date(TIME_MAX).toISOString()).toBe("9999-12-31T23:59:59.999Z");
    expect(parseTimestamp("9999-12-31T23:59:59.999Z")).toEqual({ ok: true, ms: TIME_MAX });
    expect(parseTimestamp("9999-12-31T23:59:59.999999999Z")).toEqual({ ok: true, ms: TIME_MAX });
    expect(parseTimestamp("9999-12-31T23:58:59.999-00:01")).toEqual({ ok: true, ms: TIME_MAX });
    expect(parseTimestamp("9999-12-31T23:59:00-00:01")).toMatchObject({ ok: false, code: "out_of_range" }); // TIME_MAX + 1
    expect(parseTimestamp(String(TIME_MAX + 1), { epochDigits: true })).toMatchObject({ ok: false, code: "out_of_range" });
    expect(parseTimestamp("1970-01-01T01:00:00+01:00")).toEqual({ ok: true, ms: 0 });
    expect(parseTimestamp("1970-01-01T00:00:00Z")).toEqual({ ok: true, ms: 0 });
    expect(parseTimestamp("1970-01-01T00:59:59.999+01:00")).toMatchObject({ ok: false, code: "out_of_range" });
  });
});

describe("one parser behind the door, the read API and the dashboard", () => {
  // a window wide enough that the door's own future and retention checks never decide
  const wide = { now: TIME_MAX, maxAgeMs: Infinity, currency: "USD" };
  const event = (timestamp: unknown) => ({ eventId: "e1", type: "checkout", userId: "u1", sessionId: "s1", timestamp });

  type Outcome = { ok: true; ms: number } | { ok: false; message: string };
  const door = (v: unknown): Outcome => {
    const r = validateEvent(event(v), wide);
    return r.ok ? { ok: true, ms: r.event.time } : { ok: false, message: r.reason };
  };
  const thrown = (fn: () => number): Outcome => {
    try {
      return { ok: true, ms: fn() };
    } catch (err) {
      const e = err as { status?: number; code?: string; message: string };
      expect(e.status).toBe(400);
      expect(e.code).toBe("invalid_parameter");
      return { ok: false, message: e.message };
    }
  };
  const api = (v: string) => thrown(() => parseTime("from", v));
  const dashboard = (v: string) => thrown(() => parseDashboardTime("from", v));
  const key = (o: Outcome) => (o.ok ? o.ms : "refused");

  it("gives the same decision and value for every generated input (the dashboard also reads zone-less values as UTC)", () => {
    const all = [
      ...cases("x-valid", validIsoCase),
      ...cases("x-epoch", epochCase),
      ...cases("x-impossible", impossibleCase),
      ...cases("x-malformed", malformedCase),
      ...cases("x-zoneless", zonelessCase, 1000),
    ];
    for (const c of all) {
      const text = queryText(c.input);
      const want = typeof c.expect === "number" ? c.expect : "refused";
      const wantDashboard = c.dashboard === undefined ? want : typeof c.dashboard === "number" && inRange(c.dashboard) ? c.dashboard : "refused";
      const d = door(doorValue(c.input));
      const a = api(text);
      const b = dashboard(text);
      if (key(d) !== want || key(a) !== want || key(b) !== wantDashboard) {
        throw new Error(`${show(c)}: door ${key(d)}, read API ${key(a)}, dashboard ${key(b)}; expected ${want} / dashboard ${wantDashboard}`);
      }
      if (!d.ok) {
        expect(d.message).toStartWith("timestamp");
        expect(rejectReason(d.message)).toBe("timestamp"); // the door's metrics label stays "timestamp"
      }
      if (!a.ok) expect(a.message).toStartWith("from ");
      if (!b.ok) expect(b.message).toStartWith("from ");
    }
  });
});
