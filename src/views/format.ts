// Display formatting for the dashboard: numbers, money (2 decimals + currency code), durations, times.
// One Intl formatter per shape, created once, because partials re-render several times a second.

const int = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const dec1 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const dec2 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

/** Integer count with thousands separators ("12,345"). */
export const fmtInt = (n: number): string => int.format(n);

/** A rate or small quantity with one decimal ("3.5"). */
export const fmtDec = (n: number): string => dec1.format(n);

/** Money in currency units, always two decimals and the currency code ("1,234.50 USD"). */
export const fmtMoney = (n: number, currency: string): string => `${dec2.format(n)} ${currency}`;

/** A 0..1 ratio as a percentage with one decimal ("42.5 %"). */
export const fmtPct = (ratio: number): string => `${dec1.format(ratio * 100)} %`;

/** Milliseconds, or an em dash when unknown. */
export const fmtMs = (ms: number | null | undefined): string =>
  ms === null || ms === undefined || !Number.isFinite(ms) ? "—" : `${int.format(ms)} ms`;

/** Axis tick label: compact for large values ("12K"). */
export const fmtTick = (n: number): string => (Math.abs(n) >= 10_000 ? compact.format(n) : Math.abs(n) < 10 && n !== Math.round(n) ? dec1.format(n) : int.format(n));

/** A lag in human units ("850 ms", "12.3 s", "4.0 min"). */
export function fmtLag(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  if (ms < 1000) return `${int.format(Math.max(0, ms))} ms`;
  if (ms < 60_000) return `${dec1.format(ms / 1000)} s`;
  if (ms < 3_600_000) return `${dec1.format(ms / 60_000)} min`;
  return `${dec1.format(ms / 3_600_000)} h`;
}

const pad = (n: number) => String(n).padStart(2, "0");

/** UTC clock time for axes: "HH:MM" (or "HH:MM:SS" for short spans, "MM-DD HH:MM" for long ones). */
export function fmtClock(t: number, spanMs: number): string {
  const d = new Date(t);
  const hm = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  if (spanMs <= 5 * 60_000) return `${hm}:${pad(d.getUTCSeconds())}`;
  if (spanMs > 36 * 3_600_000) return `${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${hm}`;
  return hm;
}

/** A range bound for headings: "2026-11-29 12:00 UTC". */
export function fmtStamp(t: number): string {
  return `${new Date(t).toISOString().slice(0, 16).replace("T", " ")} UTC`;
}
