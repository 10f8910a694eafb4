// Server-rendered SVG charts: a time-series line chart and a horizontal bar chart, with <title>,
// <desc> and aria labels. Text is laid out in CSS pixels and percentages rather than scaled by one
// viewBox, so labels stay readable on a 375 px phone and at 1280 px; only the plotted lines scale
// (nested viewBox, non-scaling strokes). No inline style: the CSP forbids it.

import { fmtClock, fmtTick } from "./format.ts";
import type { Series } from "./data.ts";

/** Series colours, distinguishable for the common colour-vision deficiencies (Okabe–Ito). */
export const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"];

/** About `count` round tick values covering [0, max]. */
export function niceTicks(max: number, count = 4): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
  const out: number[] = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) out.push(Math.round(v * 1e9) / 1e9);
  if (out[out.length - 1] < max) out.push(out[out.length - 1] + step);
  return out;
}

export interface LineChartProps {
  id: string;
  title: string;
  series: Series[];
  /** unit shown on the y axis ("events/s", "ms") */
  unit: string;
  from: number;
  to: number;
}

const H = 250;
const TOP = 18;
const BOTTOM = 26;
const PLOT_H = H - TOP - BOTTOM;
/** plot coordinates along x; the nested viewBox stretches them to the available width */
const PLOT_W = 1000;

const pct = (v: number) => `${v.toFixed(2)}%`;

/** Time-series line chart with a UTC time axis, a y axis in `unit`, and a legend. */
export function LineChart(p: LineChartProps) {
  let max = 0;
  for (const s of p.series) for (const pt of s.points) if (pt.v !== null && pt.v > max) max = pt.v;
  const ticks = niceTicks(max);
  const top = ticks[ticks.length - 1] || 1;
  const span = Math.max(1, p.to - p.from);
  const fx = (t: number) => (Math.min(Math.max(t, p.from), p.to) - p.from) / span; // 0..1
  const gy = (v: number) => TOP + PLOT_H - (v / top) * PLOT_H; // outer px
  const py = (v: number) => PLOT_H - (v / top) * PLOT_H; // plot px
  const xTicks = [0, 0.25, 0.5, 0.75, 1];
  const empty = p.series.every((s) => s.points.every((pt) => pt.v === null || pt.v === 0));
  const desc = p.series
    .map((s) => {
      let last: number | null = null;
      let peak = 0;
      for (const pt of s.points) if (pt.v !== null) (last = pt.v), (peak = Math.max(peak, pt.v));
      return `${s.name}: peak ${fmtTick(peak)} ${p.unit}, latest ${last === null ? "none" : fmtTick(last)} ${p.unit}`;
    })
    .join("; ");

  return (
    <figure class="chart line-chart">
      <svg width="100%" height={H} role="img" aria-labelledby={`${p.id}-t ${p.id}-d`}>
        <title id={`${p.id}-t`}>{p.title}</title>
        <desc id={`${p.id}-d`}>{empty ? "no data in this range" : desc}</desc>
        <g class="axis y" aria-hidden="true">
          {ticks.map((v, i) => (
            <g>
              <line x1="0" x2="100%" y1={gy(v)} y2={gy(v)} class={i === 0 ? "baseline" : "grid"} />
              {i > 0 && (
                <text x="2" y={gy(v) - 4}>
                  {i === ticks.length - 1 ? `${fmtTick(v)} ${p.unit}` : fmtTick(v)}
                </text>
              )}
            </g>
          ))}
        </g>
        <g class="axis x" aria-hidden="true">
          {xTicks.map((f, i) => (
            <g>
              <line x1={pct(f * 100)} x2={pct(f * 100)} y1={TOP + PLOT_H} y2={TOP + PLOT_H + 4} class="baseline" />
              <text x={pct(f * 100)} y={H - 6} text-anchor={i === 0 ? "start" : i === xTicks.length - 1 ? "end" : "middle"} class={i % 2 === 1 ? "minor" : undefined}>
                {fmtClock(p.from + span * f, span)}
              </text>
            </g>
          ))}
        </g>
        <svg x="0" y={TOP} width="100%" height={PLOT_H} viewBox={`0 0 ${PLOT_W} ${PLOT_H}`} preserveAspectRatio="none" overflow="visible">
          {p.series.map((s, i) => (
            <path d={pathOf(s, (t) => fx(t) * PLOT_W, py)} fill="none" stroke={PALETTE[i % PALETTE.length]} stroke-width="2.5" stroke-linejoin="round" stroke-linecap="round" vector-effect="non-scaling-stroke" class="line">
              <title>{s.name}</title>
            </path>
          ))}
        </svg>
        {empty && (
          <text x="50%" y={TOP + PLOT_H / 2} text-anchor="middle" class="empty-note">
            no data in this range
          </text>
        )}
      </svg>
      <figcaption>
        <ul class="legend" aria-label={`${p.title} legend`}>
          {p.series.map((s, i) => (
            <li>
              <span class={`swatch c${i % PALETTE.length}`} aria-hidden="true"></span>
              {s.name}
            </li>
          ))}
          <li class="axis-note">x: time (UTC) · y: {p.unit}</li>
        </ul>
      </figcaption>
    </figure>
  );
}

/** SVG path through the points; a null value breaks the line rather than drawing it at zero. */
function pathOf(s: Series, x: (t: number) => number, y: (v: number) => number): string {
  let d = "";
  let run = 0; // points in the current segment: a lone point gets a zero-length stroke, drawn as a dot
  for (const pt of s.points) {
    if (pt.v === null) {
      if (run === 1) d += "h0.01";
      run = 0;
      continue;
    }
    d += `${run > 0 ? "L" : "M"}${x(pt.t).toFixed(1)} ${y(pt.v).toFixed(1)}`;
    run++;
  }
  if (run === 1) d += "h0.01";
  return d || "M0 0";
}

export interface Bar {
  label: string;
  value: number;
  /** text shown after the bar (formatted value, maybe with a percentage) */
  display: string;
}

export interface BarChartProps {
  id: string;
  title: string;
  bars: Bar[];
}

const ROW = 44;
/** the longest bar leaves room for its value text at any width */
const BAR_MAX = 62;

/** Horizontal bar chart: per row a label line, then the bar and its formatted value. */
export function BarChart(p: BarChartProps) {
  if (p.bars.length === 0) return <p class="empty">no data in this range</p>;
  const max = Math.max(...p.bars.map((b) => b.value), 0) || 1;
  const cut = (s: string) => (s.length > 40 ? s.slice(0, 39) + "…" : s);
  return (
    <figure class="chart bar-chart">
      <svg width="100%" height={p.bars.length * ROW + 4} role="img" aria-labelledby={`${p.id}-t ${p.id}-d`}>
        <title id={`${p.id}-t`}>{p.title}</title>
        <desc id={`${p.id}-d`}>{p.bars.map((b) => `${b.label}: ${b.display}`).join("; ")}</desc>
        {p.bars.map((b, i) => {
          const y = i * ROW;
          const w = b.value > 0 ? Math.max(0.5, (b.value / max) * BAR_MAX) : 0;
          return (
            <g class="bar">
              <text x="0" y={y + 14} class="label">
                {cut(b.label)}
              </text>
              <rect x="0" y={y + 20} width={pct(w)} height="16" rx="2" fill={PALETTE[0]} />
              <text x={pct(w)} dx="6" y={y + 33} class="value">
                {b.display}
              </text>
            </g>
          );
        })}
      </svg>
    </figure>
  );
}
