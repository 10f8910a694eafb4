// The one parser of time values entering rtae: event timestamps at the door, from/to of the read API and the dashboard.
// Hand-written, without regexes or Date: Date.parse rolls impossible dates over (Feb 30 → Mar 2) and reads zone-less
// strings as local time. Every accepted value lies in [TIME_MIN, TIME_MAX], so `new Date(t).toISOString()` cannot throw
// for it, nor for it plus a step, a day or any retention (Dates end at ±8.64e15 ms, year 275760: 265 000 years later).

/** Earliest accepted time: 1970-01-01T00:00:00.000Z. Epoch milliseconds are never negative. */
export const TIME_MIN = 0;
/** Latest accepted time: 9999-12-31T23:59:59.999Z, the last instant with a four-digit ISO-8601 year. */
export const TIME_MAX = 253_402_300_799_999;

/** Why a time value was refused; the message next to it says it for humans. */
export type TimestampCode =
  | "missing" // undefined or null
  | "wrong_type" // neither a string nor a number
  | "not_integer" // a number with a fraction, NaN or ±Infinity
  | "digit_string" // epoch milliseconds in a string where JSON can carry a number (the door)
  | "invalid_format" // not ISO-8601 as accepted below, or longer than MAX_LENGTH
  | "invalid_date" // well-formed, but no such day, clock time or offset (2023-02-29, 24:00, 12:60, +24:00)
  | "no_zone" // a date-time without Z or an offset
  | "out_of_range"; // outside [TIME_MIN, TIME_MAX]

export type TimestampResult = { ok: true; ms: number } | { ok: false; code: TimestampCode; message: string };

export interface TimestampOptions {
  /** Names the value in messages ("timestamp", "from", "to"); default "timestamp". */
  name?: string;
  /**
   * Accept epoch milliseconds as a string of 1 to 16 ASCII digits (query strings have no numbers). Default false:
   * such a string is refused with `digit_string`, because JSON carries numbers as numbers.
   */
  epochDigits?: boolean;
  /** Read a date-time without a zone as UTC (the dashboard's `<input type="datetime-local">`). Default false: `no_zone`. */
  zonelessUtc?: boolean;
}

/** Longest string looked at: the longest accepted form, `2024-05-01T11:00:00.123456789+05:30`, is 35 characters. */
const MAX_LENGTH = 40;
/** Epoch digit strings longer than this are refused whatever their value (the contract of the read API). */
const MAX_EPOCH_DIGITS = 16;
const ECHO_MAX = 64;
const Z0 = 48; // "0"
const RANGE_TEXT = `times run from 1970-01-01T00:00:00.000Z (epoch ms 0) to 9999-12-31T23:59:59.999Z (epoch ms ${TIME_MAX})`;

const DEFAULTS: TimestampOptions = {};

/**
 * Parse an event time or a range bound to epoch milliseconds; never throws.
 *
 * Accepted: an integer number in [TIME_MIN, TIME_MAX] (-0 reads as 0); with `epochDigits`, a string of 1 to 16 ASCII
 * digits in that range; or `YYYY-MM-DD(T|t| )hh:mm[:ss[(.|,)f{1,9}]](Z|z|±hh:mm|±hhmm|±hh)` naming a real calendar day
 * (proleptic Gregorian), hours 00–23, minutes and seconds 00–59, offsets up to ±23:59. Fraction digits past the
 * millisecond are truncated. A leap second (:60) is refused: epoch milliseconds cannot represent it, and no clock
 * library producing these strings emits one. With `zonelessUtc`, `YYYY-MM-DD` and date-times without a zone are UTC.
 */
export function parseTimestamp(v: unknown, options: TimestampOptions = DEFAULTS): TimestampResult {
  const name = options.name ?? "timestamp";
  if (typeof v === "number") {
    if (!Number.isInteger(v)) return fail("not_integer", `${name} must be an integer number of epoch milliseconds, got ${v}`);
    if (v < TIME_MIN || v > TIME_MAX) return outOfRange(name, String(v));
    return { ok: true, ms: v + 0 }; // -0 becomes 0
  }
  if (typeof v === "string") return parseString(v, name, options);
  if (v === undefined || v === null) return fail("missing", `${name} is required`);
  return fail("wrong_type", `${name} must be an ISO-8601 string with a zone or epoch milliseconds, got ${describe(v)}`);
}

function parseString(s: string, name: string, options: TimestampOptions): TimestampResult {
  const n = s.length;
  if (n > MAX_LENGTH) return badFormat(s, name, options);
  const sign = n > 1 && s.charCodeAt(0) === 45 ? 1 : 0; // "-123" is still a number in a string
  if (isDigits(s, sign, n)) {
    if (!options.epochDigits) {
      return fail("digit_string", `${name} must be a number of epoch milliseconds, not a string, got ${describe(s)}`);
    }
    if (sign === 1 || n > MAX_EPOCH_DIGITS) return outOfRange(name, describe(s));
    const t = Number(s);
    return t > TIME_MAX ? outOfRange(name, describe(s)) : { ok: true, ms: t };
  }

  // syntax first, so a string that is not ISO-8601 is never called an impossible date
  if (n < 10 || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45) return badFormat(s, name, options);
  const year = digits(s, 0, 4);
  const month = digits(s, 5, 2);
  const day = digits(s, 8, 2);
  if (year < 0 || month < 0 || day < 0) return badFormat(s, name, options);
  let hour = 0;
  let minute = 0;
  let second = 0;
  let ms = 0;
  let zone = false;
  let offsetSign = 0;
  let offsetHour = 0;
  let offsetMinute = 0;
  if (n > 10) {
    const sep = s.charCodeAt(10);
    if (sep !== 84 && sep !== 116 && sep !== 32) return badFormat(s, name, options); // T t space
    if (n < 16 || s.charCodeAt(13) !== 58) return badFormat(s, name, options);
    hour = digits(s, 11, 2);
    minute = digits(s, 14, 2);
    if (hour < 0 || minute < 0) return badFormat(s, name, options);
    let i = 16;
    if (i < n && s.charCodeAt(i) === 58) {
      second = digits(s, i + 1, 2);
      if (second < 0) return badFormat(s, name, options);
      i += 3;
      const dot = i < n ? s.charCodeAt(i) : 0;
      if (dot === 46 || dot === 44) {
        const start = ++i;
        let scale = 100;
        while (i < n) {
          const d = s.charCodeAt(i) - Z0;
          if (!(d >= 0 && d <= 9)) break;
          if (scale >= 1) ms += d * scale; // digits past the millisecond truncate
          scale /= 10;
          i++;
        }
        if (i === start || i - start > 9) return badFormat(s, name, options);
      }
    }
    if (i < n) {
      const z = s.charCodeAt(i);
      if (z === 90 || z === 122) {
        if (i + 1 !== n) return badFormat(s, name, options); // Z z
      } else if (z === 43 || z === 45) {
        offsetHour = digits(s, i + 1, 2);
        const rest = n - (i + 3);
        if (rest === 3 && s.charCodeAt(i + 3) === 58) offsetMinute = digits(s, i + 4, 2);
        else if (rest === 2) offsetMinute = digits(s, i + 3, 2);
        else if (rest !== 0) return badFormat(s, name, options);
        if (offsetHour < 0 || offsetMinute < 0) return badFormat(s, name, options);
        offsetSign = z === 45 ? -1 : 1;
      } else return badFormat(s, name, options);
      zone = true;
    }
  }

  if (month < 1 || month > 12) return badDate(s, name, `there is no month ${pad2(month)}`);
  const dim = daysInMonth(year, month);
  if (day < 1 || day > dim) {
    return badDate(s, name, day < 1 ? "there is no day 00" : `${pad4(year)}-${pad2(month)} has ${dim} days`);
  }
  if (hour > 23) return badDate(s, name, "hours run from 00 to 23 (write 24:00 as 00:00 of the next day)");
  if (minute > 59) return badDate(s, name, "minutes run from 00 to 59");
  if (second > 59) return badDate(s, name, "seconds run from 00 to 59 (epoch milliseconds have no leap seconds)");
  if (offsetHour > 23 || offsetMinute > 59) return badDate(s, name, "offsets run from -23:59 to +23:59");
  if (!zone && !options.zonelessUtc) {
    return fail("no_zone", `${name} ${describe(s)} has no time zone; add Z or an offset like +02:00`);
  }
  const offset = offsetSign * (offsetHour * 60 + offsetMinute);
  const t = ((daysFromCivil(year, month, day) * 24 + hour) * 60 + minute - offset) * 60_000 + second * 1000 + ms;
  return t < TIME_MIN || t > TIME_MAX ? outOfRange(name, describe(s)) : { ok: true, ms: t };
}

/** Days in a month of the proleptic Gregorian calendar. */
function daysInMonth(y: number, m: number): number {
  if (m === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return m === 4 || m === 6 || m === 9 || m === 11 ? 30 : 31;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

/** `count` ASCII digits at `at` as a number, or -1 (also past the end of the string: NaN fails the test). */
function digits(s: string, at: number, count: number): number {
  let v = 0;
  for (let i = at; i < at + count; i++) {
    const d = s.charCodeAt(i) - Z0;
    if (!(d >= 0 && d <= 9)) return -1;
    v = v * 10 + d;
  }
  return v;
}

function isDigits(s: string, from: number, to: number): boolean {
  if (from >= to) return false;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

// Messages avoid "at most", "too long" and "longer than": the door's metrics label reads those as "oversized".

function fail(code: TimestampCode, message: string): TimestampResult {
  return { ok: false, code, message };
}

function badFormat(s: string, name: string, options: TimestampOptions): TimestampResult {
  const zoneless = options.zonelessUtc ? " or without one (read as UTC, e.g. 2024-05-01T12:00)" : "";
  return fail(
    "invalid_format",
    `${name} must be ISO-8601 with a zone (e.g. 2024-05-01T12:00:00Z)${zoneless} or epoch milliseconds, got ${describe(s)}`,
  );
}

function badDate(s: string, name: string, why: string): TimestampResult {
  return fail("invalid_date", `${name} ${describe(s)} is not a valid date and time: ${why}`);
}

function outOfRange(name: string, shown: string): TimestampResult {
  return fail("out_of_range", `${name} ${shown} is out of range: ${RANGE_TEXT}`);
}

const pad2 = (v: number) => String(v).padStart(2, "0");
const pad4 = (v: number) => String(v).padStart(4, "0");

/** A short, safe rendering of an offending value for a reason: never more than ECHO_MAX characters of input. */
export function describe(v: unknown): string {
  switch (typeof v) {
    case "string":
      return JSON.stringify(v.length > ECHO_MAX ? `${v.slice(0, ECHO_MAX)}…` : v);
    case "number":
    case "boolean":
      return String(v);
    case "undefined":
      return "nothing";
    case "object":
      return v === null ? "null" : Array.isArray(v) ? "an array" : "an object";
    default:
      return `a ${typeof v}`;
  }
}
