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
  // minute bucket a slot was last filed under (-1 = none), and a dirty flag per slot: a session's
  // `last` moves with nearly every event, so filing and dirty-marking must not allocate per event
  let filed = new Float64Array(cap).fill(-1);
  let dirtyFlag = new Uint8Array(cap);
  let used = 0;
  const free: number[] = [];
  const index = createKeyIndex();
  const buckets = new Map<number, number[]>(); // minute of `last` -> slots (may hold stale entries)
  let dirty: number[] = [];
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
    const f = new Float64Array(n).fill(-1);
    f.set(filed);
    filed = f;
    const d8 = new Uint8Array(n);
    d8.set(dirtyFlag);
    dirtyFlag = d8;
    cap = n;
  }

  function bucket(slot: number) {
    const m = Math.floor(last[slot] / MINUTE);
    if (filed[slot] === m) return;
    filed[slot] = m;
    let b = buckets.get(m);
    if (!b) buckets.set(m, (b = []));
    b.push(slot);
  }

  function markDirty(slot: number) {
    if (dirtyFlag[slot] === 0) {
      dirtyFlag[slot] = 1;
      dirty.push(slot);
    }
  }

  const table: SessionTable = {
    slotOf(k) {
      return index.get(k);
    },
    open(k, p, t) {
      let slot = index.get(k);
      if (slot < 0) {
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
      filed[slot] = -1;
      bucket(slot);
      markDirty(slot);
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
      markDirty(slot);
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
          if (filed[slot] !== m) continue; // filed under a later minute since
          if (last[slot] + gapMs >= watermark) {
            filed[slot] = -1;
            bucket(slot);
            continue;
          }
          onClose(slot);
          index.delete(k);
          filed[slot] = -1;
          dirtyFlag[slot] = 0; // a stale entry may stay in `dirty`; drainDirty skips it
          closed.push({ partition: partition[slot], key: k });
          free.push(slot);
        }
      }
    },
    get size() {
      return index.size;
    },
    drainDirty() {
      const out: number[] = [];
      for (const slot of dirty) {
        if (dirtyFlag[slot] === 1) {
          dirtyFlag[slot] = 0;
          out.push(slot);
        }
      }
      dirty = [];
      return out;
    },
    drainClosed() {
      // a key that closed and opened again since the last drain is an upsert of the new session, not
      // a delete: the store applies upserts before deletes, so deleting it would lose the new session
      const out = closed.filter((c) => index.get(c.key) < 0);
      closed = [];
      return out;
    },
    forEach(fn) {
      index.forEach(fn);
    },
  };
  return table;
}

/**
 * Open-addressing hash index from 53-bit session keys to slots (linear probing, backward-shift
 * deletion). A Map keyed by non-small-integer numbers boxes and hashes doubles on every lookup;
 * this keeps the per-event lookup to a few typed-array reads.
 */
function createKeyIndex() {
  let cap = 4096;
  let mask = cap - 1;
  let keys = new Float64Array(cap);
  let slots = new Int32Array(cap).fill(-1);
  let size = 0;
  const home = (k: number) => (Math.imul((k >>> 0) ^ Math.imul((k / 4294967296) | 0, 0x9e3779b1), 0x85ebca6b) >>> 0) & mask;

  function place(k: number, slot: number) {
    let i = home(k);
    while (slots[i] >= 0) i = (i + 1) & mask;
    keys[i] = k;
    slots[i] = slot;
  }
  function grow() {
    const oldKeys = keys;
    const oldSlots = slots;
    cap *= 2;
    mask = cap - 1;
    keys = new Float64Array(cap);
    slots = new Int32Array(cap).fill(-1);
    for (let i = 0; i < oldSlots.length; i++) if (oldSlots[i] >= 0) place(oldKeys[i], oldSlots[i]);
  }
  function find(k: number): number {
    let i = home(k);
    while (slots[i] >= 0) {
      if (keys[i] === k) return i;
      i = (i + 1) & mask;
    }
    return -1;
  }
  return {
    get(k: number): number {
      const i = find(k);
      return i < 0 ? -1 : slots[i];
    },
    set(k: number, slot: number): void {
      const i = find(k);
      if (i >= 0) {
        slots[i] = slot;
        return;
      }
      if ((size + 1) * 2 > cap) grow();
      place(k, slot);
      size++;
    },
    delete(k: number): void {
      let i = find(k);
      if (i < 0) return;
      // backward shift: pull later entries of the probe run into the hole so lookups never stop early
      let j = i;
      for (;;) {
        j = (j + 1) & mask;
        if (slots[j] < 0) break;
        const h = home(keys[j]);
        const between = i <= j ? h > i && h <= j : h > i || h <= j;
        if (between) continue;
        keys[i] = keys[j];
        slots[i] = slots[j];
        i = j;
      }
      slots[i] = -1;
      size--;
    },
    get size() {
      return size;
    },
    forEach(fn: (slot: number) => void): void {
      for (let i = 0; i < cap; i++) if (slots[i] >= 0) fn(slots[i]);
    },
  };
}
