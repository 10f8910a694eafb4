// Global string dictionary of the aggregator: product ids and campaign sources become small integers so
// panes key typed arrays and Maps by number. Ids never leave memory (stored rows, checkpoints and partials
// carry strings), so an id nothing refers to any more is released and its number reused. Holders register
// and mark what they hold; a sweep condemns the rest; a condemned id is freed only once every reader pinned
// before the sweep has finished (epoch-based reclamation), and interning it meanwhile takes it back. The
// per-event path is untouched: sweeps run from advance(), amortised against the ids interned since the last.

/** Something that keeps dictionary ids: aggregator state, the read cache, partials, the workers' string ids. */
export interface DictionaryHolder {
  /** visit every id this holder refers to */
  mark(visit: (id: number) => void): void;
  /**
   * Caches of translations only (the workers' string ids): called before this holder's `mark`, with what
   * the other holders need. The cache starts letting go of the other ids, and marks each until it has.
   */
  prune?(needed: (id: number) => boolean): void;
}

export interface DictionaryOptions {
  /** no sweep below this many ids (default 16 384) */
  minIds?: number;
  /** sweep at least this often (processing time, ms) once minIds is reached (default 60 s): a sweep marks all
   * retained state (~10 ms for 100 k products an hour with 100 k open sessions), so it is spaced out */
  sweepIntervalMs?: number;
}

export interface DictionaryStats {
  /** ids held, condemned ones included */
  ids: number;
  /** condemned ids waiting for the readers pinned before their sweep */
  condemned: number;
  /** ids freed since start (their numbers are reused) */
  released: number;
  sweeps: number;
  /** ids the last sweep found held (by any holder) */
  lastHeld: number;
}

export interface Dictionary {
  /** id of s, assigning a free id when new (and taking back a condemned one) */
  intern(s: string): number;
  /** id of s or -1 (a condemned id is taken back, as by intern) */
  lookup(s: string): number;
  /** string of id (id must be held, or pinned by the caller) */
  str(id: number): string;
  /** ids held */
  readonly size: number;
  /** register a holder; returns the function that unregisters it */
  addHolder(holder: DictionaryHolder): () => void;
  /**
   * A reader that keeps ids outside any holder across an await (a query's panes): until the returned
   * function is called, no id it may hold is freed.
   */
  pin(): () => void;
  /** sweep when due (size at least minIds and doubled since the last sweep, or the interval passed); frees what the grace period allows */
  maintain(now: number): boolean;
  /** mark from every holder, condemn the rest, free what no pinned reader can hold */
  sweep(): void;
  stats(): DictionaryStats;
}

const DEFAULT_MIN_IDS = 16_384;
const DEFAULT_SWEEP_INTERVAL_MS = 60_000;
/** condemnedAt value of an id that is live (or free) */
const LIVE = -1;

export function createDictionary(opts: DictionaryOptions = {}): Dictionary {
  const minIds = opts.minIds ?? DEFAULT_MIN_IDS;
  const intervalMs = opts.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
  const ids = new Map<string, number>();
  const strs: Array<string | undefined> = [];
  const free: number[] = [];
  // per id: the epoch of the sweep that condemned it, LIVE otherwise
  let condemnedAt = new Int32Array(1024).fill(LIVE);
  let marks = new Uint8Array(0);
  const holders = new Set<DictionaryHolder>();
  // epoch -> pins taken while it was current; keys are inserted in increasing order, so the first is the oldest
  const pins = new Map<number, number>();
  let epoch = 0;
  const batches: Array<{ epoch: number; ids: number[] }> = [];
  let condemned = 0;
  let released = 0;
  let sweeps = 0;
  let lastHeld = 0;
  // ids held right after the last sweep (condemned ones a pinned reader delays included): the growth baseline
  let sizeAtSweep = 0;
  let lastSweepAt = -Infinity;

  function take(id: number): void {
    if (condemnedAt[id] !== LIVE) {
      condemnedAt[id] = LIVE;
      condemned--;
    }
  }

  function release(id: number): void {
    const s = strs[id]!;
    ids.delete(s);
    strs[id] = undefined;
    condemnedAt[id] = LIVE;
    free.push(id);
    condemned--;
    released++;
  }

  /** Free the batches no pinned reader can still hold: those condemned before the oldest pin's epoch began. */
  function reclaim(): void {
    const oldest = pins.size === 0 ? Infinity : (pins.keys().next().value as number);
    while (batches.length > 0 && batches[0].epoch < oldest) {
      const b = batches.shift()!;
      // an id interned again since is live again (or condemned anew by a later sweep: that batch frees it)
      for (const id of b.ids) if (condemnedAt[id] === b.epoch) release(id);
    }
  }

  function sweep(): void {
    reclaim();
    const n = strs.length;
    if (marks.length < n) marks = new Uint8Array(Math.max(n, marks.length * 2));
    else marks.fill(0, 0, n);
    const visit = (id: number) => {
      if (id >= 0 && id < n) marks[id] = 1;
    };
    for (const h of holders) if (!h.prune) h.mark(visit);
    const needed = (id: number) => id >= 0 && id < n && marks[id] === 1;
    for (const h of holders) if (h.prune) h.prune(needed);
    for (const h of holders) if (h.prune) h.mark(visit);
    const batch: number[] = [];
    let held = 0;
    for (let id = 0; id < n; id++) {
      if (marks[id] === 1) {
        held++;
        take(id); // a holder only gets ids by interning them, so this never fires; it keeps a marked id safe regardless
      } else if (strs[id] !== undefined && condemnedAt[id] === LIVE) {
        condemnedAt[id] = epoch;
        condemned++;
        batch.push(id);
      }
    }
    if (batch.length > 0) batches.push({ epoch, ids: batch });
    epoch++;
    sweeps++;
    lastHeld = held;
    reclaim(); // with no reader pinned, the batch goes at once
    sizeAtSweep = strs.length - free.length;
  }

  return {
    intern(s) {
      let id = ids.get(s);
      if (id !== undefined) {
        take(id);
        return id;
      }
      if (free.length > 0) {
        id = free.pop()!;
        strs[id] = s;
      } else {
        id = strs.length;
        strs.push(s);
        if (id >= condemnedAt.length) {
          const grown = new Int32Array(condemnedAt.length * 2).fill(LIVE);
          grown.set(condemnedAt);
          condemnedAt = grown;
        }
      }
      ids.set(s, id);
      return id;
    },
    lookup(s) {
      const id = ids.get(s);
      if (id === undefined) return -1;
      take(id);
      return id;
    },
    str(id) {
      return strs[id] as string;
    },
    get size() {
      return strs.length - free.length;
    },
    addHolder(holder) {
      holders.add(holder);
      return () => void holders.delete(holder);
    },
    pin() {
      const e = epoch;
      pins.set(e, (pins.get(e) ?? 0) + 1);
      let open = true;
      return () => {
        if (!open) return;
        open = false;
        const left = pins.get(e)! - 1;
        if (left === 0) pins.delete(e);
        else pins.set(e, left);
      };
    },
    maintain(now) {
      if (batches.length > 0) reclaim();
      const size = strs.length - free.length;
      if (size < minIds) return false;
      if (size < 2 * sizeAtSweep && now - lastSweepAt < intervalMs) return false;
      lastSweepAt = now;
      sweep();
      return true;
    },
    sweep,
    stats: () => ({ ids: strs.length - free.length, condemned, released, sweeps, lastHeld }),
  };
}
