// Open sessions (30 min event-time gap) in one open-addressing hash table keyed by the 53-bit session
// hash, whose cells are the session rows themselves: a lookup lands on the row it needs (one cache line,
// no separate index, no object per session or event). Closing is driven by the watermark through per-minute buckets.

export const STEP_VIEW = 1;
export const STEP_CART = 2;
export const STEP_CHECKOUT = 4;
export const STEP_PURCHASE = 8;

// Columns of a session row in `rec` (row = slot * S_STRIDE; a slot is a table cell). With 100 k+ open
// sessions the table is far larger than the caches, so an event's cost is the number of distinct cache
// lines it touches: a separate key index and struct-of-arrays columns cost one miss each.
export const S_START = 0;
export const S_LAST = 1;
/** time of the event that set the source; Infinity while none did */
export const S_SOURCE_TIME = 2;
/** key + 1: 0 marks a free cell (fresh arrays need no fill), -1 a deleted one (tombstone) */
const S_KEY1 = 3;
export const S_BITS = 4;
/** dictionary id, -1 = direct / none yet */
export const S_SOURCE = 5;
export const S_PARTITION = 6;
/** minute bucket the slot was last filed under (-1 = none) */
const S_FILED = 7;
export const S_STRIDE = 8;

const FREE = 0;
const DELETED = -1;

export interface SessionTable {
  /** slot of an open session, -1 when absent */
  slotOf(key: number): number;
  /**
   * New session in the key's slot (reused when the key is still open). May rebuild the table, which
   * moves rows: re-read `rec`, and do not hold slots from before the call.
   */
  open(key: number, partition: number, t: number): number;
  /** session rows, S_STRIDE doubles per slot (replaced when the table grows) */
  readonly rec: Float64Array;
  keyOf(slot: number): number;
  /** note that slot's last time changed (re-buckets it for closing) */
  touched(slot: number): void;
  /** close sessions with last + gap < watermark; returns the keys closed */
  closeBefore(watermark: number, gapMs: number, onClose: (slot: number) => void): void;
  readonly size: number;
  /** slots changed since the last drain */
  drainDirty(): number[];
  drainClosed(): Array<{ partition: number; key: number }>;
  forEach(fn: (slot: number) => void): void;
  /** forget every session of the partitions `drop` selects, reporting nothing as closed (the partition moved away) */
  dropPartitions(drop: (partition: number) => boolean): number;
}

const MINUTE = 60_000;

/** 53-bit key from the two 32-bit halves of the session hash (a JS number stays exact). */
export function sessionKey(lo: number, hi: number): number {
  return (hi & 0x1fffff) * 4294967296 + (lo >>> 0);
}

/**
 * Linear probing with tombstones rather than backward-shift deletion, so rows never move except when
 * the whole table is rebuilt (on growth, or when tombstones pile up); the rebuild renumbers the slots
 * held in the dirty list and the minute buckets.
 */
export function createSessionTable(initial = 1024): SessionTable {
  let cap = 1;
  while (cap < initial * 2) cap *= 2;
  let mask = cap - 1;
  let rec = new Float64Array(cap * S_STRIDE);
  // a dirty flag per slot: a session's `last` moves with nearly every event, so dirty-marking and
  // filing must not allocate per event
  let dirtyFlag = new Uint8Array(cap);
  let size = 0;
  let deleted = 0;
  const buckets = new Map<number, number[]>(); // minute of `last` -> slots (may hold stale entries)
  let dirty: number[] = [];
  let closed: Array<{ partition: number; key: number }> = [];

  const home = (k: number) => (Math.imul((k >>> 0) ^ Math.imul((k / 4294967296) | 0, 0x9e3779b1), 0x85ebca6b) >>> 0) & mask;

  // The last key find() missed and the first free or deleted cell of its probe run, where open()
  // inserts it without probing again. Any change to the table (open, close, rebuild) forgets it.
  let missKey = NaN;
  let missCell = -1;

  function find(k: number): number {
    const k1 = k + 1;
    let i = home(k);
    let reusable = -1;
    for (;;) {
      const v = rec[i * S_STRIDE + S_KEY1];
      if (v === k1) return i;
      if (v === FREE) {
        missKey = k;
        missCell = reusable >= 0 ? reusable : i;
        return -1;
      }
      if (v === DELETED && reusable < 0) reusable = i; // deleted cells do not end a probe run
      i = (i + 1) & mask;
    }
  }

  /** Re-inserts every live row into a table of `n` cells and renumbers the slots held elsewhere. */
  function rebuild(n: number) {
    const old = rec;
    const oldDirty = dirtyFlag;
    const oldCap = cap;
    // locals, not the closure's `rec` / `mask`: this loop copies every row
    const next = new Float64Array(n * S_STRIDE);
    const nextDirty = new Uint8Array(n);
    const m = n - 1;
    const moved = new Int32Array(oldCap);
    for (let s = 0, o = 0; s < oldCap; s++, o += S_STRIDE) {
      const k1 = old[o + S_KEY1];
      if (k1 <= 0) {
        moved[s] = -1;
        continue;
      }
      const k = k1 - 1;
      let i = (Math.imul((k >>> 0) ^ Math.imul((k / 4294967296) | 0, 0x9e3779b1), 0x85ebca6b) >>> 0) & m; // home(k)
      while (next[i * S_STRIDE + S_KEY1] !== FREE) i = (i + 1) & m;
      const d = i * S_STRIDE;
      for (let c = 0; c < S_STRIDE; c++) next[d + c] = old[o + c];
      nextDirty[i] = oldDirty[s];
      moved[s] = i;
    }
    rec = next;
    dirtyFlag = nextDirty;
    cap = n;
    mask = m;
    deleted = 0;
    missKey = NaN;
    const renumber = (slots: number[]) => {
      let w = 0;
      for (let r = 0; r < slots.length; r++) {
        const to = moved[slots[r]];
        if (to >= 0) slots[w++] = to; // entries of closed sessions are stale: drop them
      }
      slots.length = w;
    };
    renumber(dirty);
    for (const slots of buckets.values()) renumber(slots);
  }

  function bucket(slot: number) {
    const o = slot * S_STRIDE;
    const m = Math.floor(rec[o + S_LAST] / MINUTE);
    if (rec[o + S_FILED] === m) return;
    rec[o + S_FILED] = m;
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
    slotOf: find,
    open(k, p, t) {
      // touchSession calls slotOf first: a miss just now already found the cell to take
      let slot = k === missKey ? -1 : find(k);
      if (slot < 0) {
        // keep at most 3/4 of the cells used or deleted (rows are adjacent, so probing a few is
        // cheap, and a smaller table misses the caches less); grow when live rows pass half
        if ((size + deleted + 1) * 4 > cap * 3) rebuild((size + 1) * 2 > cap ? cap * 2 : cap);
        if (k !== missKey) find(k); // a rebuild forgot the cell: find it in the new table
        slot = missCell;
        if (rec[slot * S_STRIDE + S_KEY1] === DELETED) deleted--;
        size++;
      }
      const o = slot * S_STRIDE;
      rec[o + S_START] = t;
      rec[o + S_LAST] = t;
      rec[o + S_SOURCE_TIME] = Infinity;
      rec[o + S_BITS] = 0;
      rec[o + S_SOURCE] = -1;
      rec[o + S_PARTITION] = p;
      rec[o + S_KEY1] = k + 1;
      rec[o + S_FILED] = -1;
      missKey = NaN;
      bucket(slot);
      markDirty(slot);
      return slot;
    },
    get rec() {
      return rec;
    },
    keyOf(slot) {
      return rec[slot * S_STRIDE + S_KEY1] - 1;
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
          const o = slot * S_STRIDE;
          const k1 = rec[o + S_KEY1];
          if (k1 <= 0) continue; // already closed
          if (rec[o + S_FILED] !== m) continue; // filed under a later minute since
          if (rec[o + S_LAST] + gapMs >= watermark) {
            rec[o + S_FILED] = -1;
            bucket(slot);
            continue;
          }
          onClose(slot);
          rec[o + S_KEY1] = DELETED;
          rec[o + S_FILED] = -1;
          size--;
          deleted++;
          missKey = NaN;
          dirtyFlag[slot] = 0; // a stale entry may stay in `dirty`; drainDirty skips it
          closed.push({ partition: rec[o + S_PARTITION], key: k1 - 1 });
        }
      }
    },
    get size() {
      return size;
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
      const out = closed.filter((c) => find(c.key) < 0);
      closed = [];
      return out;
    },
    forEach(fn) {
      for (let s = 0; s < cap; s++) if (rec[s * S_STRIDE + S_KEY1] > 0) fn(s);
    },
    dropPartitions(drop) {
      let n = 0;
      for (let s = 0, o = 0; s < cap; s++, o += S_STRIDE) {
        if (rec[o + S_KEY1] <= 0 || !drop(rec[o + S_PARTITION])) continue;
        rec[o + S_KEY1] = DELETED;
        rec[o + S_FILED] = -1;
        dirtyFlag[s] = 0;
        size--;
        deleted++;
        n++;
      }
      missKey = NaN;
      closed = closed.filter((c) => !drop(c.partition));
      return n;
    },
  };
  return table;
}
