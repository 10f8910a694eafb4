// Stream perturbation for tests: duplicates, bounded disorder and late events, with the ground truth returned.
// Arrival order is a sort by arrival key; keys are built so each guarantee can be checked exactly afterwards.

import type { WireEvent } from "./wire.ts";
import { createPrng } from "./prng.ts";

export interface PerturbOptions {
  seed: number;
  /** share of events re-sent later with the same eventId, default 0 */
  duplicateRate?: number;
  /** arrivals are shuffled so no event arrives more than this behind an earlier arrival, default 0 */
  disorderMs?: number;
  /** share of events held back until the stream is lateMs past them, default 0 */
  lateRate?: number;
  /** how far behind the stream late events arrive, default 60 000 */
  lateMs?: number;
}

export interface Perturbed {
  events: WireEvent[];
  /** ids sent twice */
  duplicateIds: Set<string>;
  /** ids that arrive when the maximum timestamp already seen is at least lateMs past theirs */
  lateIds: Set<string>;
}

/**
 * Returns the events in a perturbed arrival order.
 * Guarantees: every id in duplicateIds appears exactly twice (the copy after the original, equal content);
 * an event not in lateIds never arrives more than disorderMs behind the largest timestamp before it;
 * an event in lateIds arrives right after the first event that puts the stream lateMs past it
 * (events too near the end of the input to be overtaken that far are left on time).
 */
export function perturb(events: readonly WireEvent[], opts: PerturbOptions): Perturbed {
  const rng = createPrng(opts.seed, "perturb");
  const dupRate = opts.duplicateRate ?? 0;
  const disorder = Math.max(0, opts.disorderMs ?? 0);
  const lateRate = opts.lateRate ?? 0;
  const lateMs = opts.lateMs ?? 60_000;

  // On-time arrivals (originals and copies) get key = timestamp + jitter in [0, disorder]; sorting by key bounds
  // disorder: if a arrives before b then a.ts <= key(a) <= key(b) <= b.ts + disorder.
  const arrivals: { e: WireEvent; key: number; seq: number }[] = [];
  const late: WireEvent[] = [];
  const duplicateIds = new Set<string>();
  let seq = 0;
  for (const e of events) {
    if (lateRate > 0 && rng.chance(lateRate)) {
      late.push(e);
      continue;
    }
    const key = e.timestamp + rng.next() * disorder;
    arrivals.push({ e, key, seq: seq++ });
    if (dupRate > 0 && !duplicateIds.has(e.eventId) && rng.chance(dupRate)) {
      duplicateIds.add(e.eventId);
      // The copy stays inside the same disorder bound and arrives after the original.
      const copy = e.items ? { ...e, items: e.items.map((i) => ({ ...i })) } : { ...e };
      arrivals.push({ e: copy, key: key + rng.next() * (e.timestamp + disorder - key), seq: seq++ });
    }
  }
  arrivals.sort((a, b) => a.key - b.key || a.seq - b.seq);

  // Running maximum of timestamps in arrival order: a late event is slotted after the first arrival that
  // lifts it to >= ts + lateMs.
  const runMax = new Float64Array(arrivals.length);
  let m = -Infinity;
  for (let i = 0; i < arrivals.length; i++) {
    m = Math.max(m, arrivals[i].e.timestamp);
    runMax[i] = m;
  }
  const after: WireEvent[][] = new Array(arrivals.length);
  const lateIds = new Set<string>();
  const tail: WireEvent[] = [];
  for (const e of late) {
    const need = e.timestamp + lateMs;
    let lo = 0;
    let hi = arrivals.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (runMax[mid] >= need) hi = mid;
      else lo = mid + 1;
    }
    if (lo === arrivals.length) {
      // Nothing comes that far after it: the stream cannot make it late, so it arrives on time instead.
      tail.push(e);
      continue;
    }
    (after[lo] ??= []).push(e);
    lateIds.add(e.eventId);
  }

  const out: WireEvent[] = [];
  let t = 0;
  tail.sort((a, b) => a.timestamp - b.timestamp);
  for (let i = 0; i < arrivals.length; i++) {
    // Late-excluded tail events are near the end; merge them in timestamp order so they stay within disorder.
    while (t < tail.length && tail[t].timestamp <= arrivals[i].key - disorder) out.push(tail[t++]);
    out.push(arrivals[i].e);
    const held = after[i];
    if (held !== undefined) for (const e of held) out.push(e);
  }
  while (t < tail.length) out.push(tail[t++]);
  return { events: out, duplicateIds, lateIds };
}
