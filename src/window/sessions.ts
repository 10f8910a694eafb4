// Open sessions (30 min event-time gap) as struct-of-arrays keyed by a 53-bit session hash:
// no object per session or event. Closing is driven by the watermark through per-minute buckets.

export const STEP_VIEW = 1;
export const STEP_CART = 2;
export const STEP_CHECKOUT = 4;
export const STEP_PURCHASE = 8;

export interface SessionTable {
  slotOf(key: number): number; // -1 when absent
  open(key: number, partition: number, t: number): number; // new session in a (possibly reused) slot
  readonly start: Float64Array;
  readonly last: Float64Array;
  readonly sourceTime: Float64Array;
  readonly bits: Uint8Array;
  readonly source: Int32Array; // dictionary id, -1 = direct / none yet
  readonly partition: Int32Array;
  readonly key: Float64Array;
  /** note that slot's last time changed (re-buckets it for closing) */
  touched(slot: number): void;
  /** close sessions with last + gap < watermark; returns the keys closed */
  closeBefore(watermark: number, gapMs: number, onClose: (slot: number) => void): void;
  readonly size: number;
  /** slots changed since the last drain */
  drainDirty(): number[];
  drainClosed(): Array<{ partition: number; key: number }>;
  forEach(fn: (slot: number) => void): void;
}

const MINUTE = 60_000;

/** 53-bit key from the two 32-bit halves of the session hash (a JS number stays exact). */
export function sessionKey(lo: number, hi: number): number {
  return (hi & 0x1fffff) * 4294967296 + (lo >>> 0);
}

export function createSessionTable(initial = 1024): SessionTable {
  let cap = initial;
  let start = new Float64Array(cap);
  let last = new Float64Array(cap);
  let sourceTime = new Float64Array(cap);
  let bits = new Uint8Array(cap);
  let source = new Int32Array(cap);
  let partition = new Int32Array(cap);
  let key = new Float64Array(cap);
  let used = 0;
  const free: number[] = [];
  const index = new Map<number, number>();
  const buckets = new Map<number, number[]>(); // minute of `last` -> slots (may hold stale entries)
  let dirty = new Set<number>();
  let closed: Array<{ partition: number; key: number }> = [];

  function grow() {
    const n = cap * 2;
    const g64 = (a: Float64Array) => {
      const b = new Float64Array(n);
      b.set(a);
      return b;
    };
    start = g64(start);
    last = g64(last);
    sourceTime = g64(sourceTime);
    key = g64(key);
    const b8 = new Uint8Array(n);
    b8.set(bits);
    bits = b8;
    const s32 = new Int32Array(n);
    s32.set(source);
    source = s32;
    const p32 = new Int32Array(n);
    p32.set(partition);
    partition = p32;
    cap = n;
  }

  function bucket(slot: number) {
    const m = Math.floor(last[slot] / MINUTE);
    let b = buckets.get(m);
    if (!b) buckets.set(m, (b = []));
    b.push(slot);
  }

  const table: SessionTable = {
    slotOf(k) {
      return index.get(k) ?? -1;
    },
    open(k, p, t) {
      let slot = index.get(k);
      if (slot === undefined) {
        if (free.length > 0) slot = free.pop()!;
        else {
          if (used === cap) grow();
          slot = used++;
        }
        index.set(k, slot);
      }
      start[slot] = t;
      last[slot] = t;
      sourceTime[slot] = Infinity;
      bits[slot] = 0;
      source[slot] = -1;
      partition[slot] = p;
      key[slot] = k;
      bucket(slot);
      dirty.add(slot);
      return slot;
    },
    get start() {
      return start;
    },
    get last() {
      return last;
    },
    get sourceTime() {
      return sourceTime;
    },
    get bits() {
      return bits;
    },
    get source() {
      return source;
    },
    get partition() {
      return partition;
    },
    get key() {
      return key;
    },
    touched(slot) {
      dirty.add(slot);
      bucket(slot);
    },
    closeBefore(watermark, gapMs, onClose) {
      const limit = Math.floor((watermark - gapMs) / MINUTE);
      for (const [m, slots] of buckets) {
        if (m >= limit) continue;
        buckets.delete(m);
        for (const slot of slots) {
          const k = key[slot];
          if (index.get(k) !== slot) continue; // already freed
          if (Math.floor(last[slot] / MINUTE) !== m) continue; // re-bucketed later
          if (last[slot] + gapMs >= watermark) {
            bucket(slot);
            continue;
          }
          onClose(slot);
          index.delete(k);
          dirty.delete(slot);
          closed.push({ partition: partition[slot], key: k });
          free.push(slot);
        }
      }
    },
    get size() {
      return index.size;
    },
    drainDirty() {
      const out = [...dirty];
      dirty = new Set();
      return out;
    },
    drainClosed() {
      // a key that closed and opened again since the last drain is an upsert of the new session, not
      // a delete: the store applies upserts before deletes, so deleting it would lose the new session
      const out = closed.filter((c) => !index.has(c.key));
      closed = [];
      return out;
    },
    forEach(fn) {
      for (const slot of index.values()) fn(slot);
    },
  };
  return table;
}
