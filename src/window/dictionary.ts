// Global string dictionary of the aggregator: product ids, categories and campaign sources become
// small integers so panes key typed arrays and Maps by number. Ids live only in memory; stored rows keep strings.

export interface Dictionary {
  /** id of s, assigning the next id when new */
  intern(s: string): number;
  /** id of s or -1 */
  lookup(s: string): number;
  /** string of id (id must exist) */
  str(id: number): string;
  readonly size: number;
}

export function createDictionary(): Dictionary {
  const ids = new Map<string, number>();
  const strs: string[] = [];
  return {
    intern(s) {
      let id = ids.get(s);
      if (id === undefined) {
        id = strs.length;
        strs.push(s);
        ids.set(s, id);
      }
      return id;
    },
    lookup(s) {
      return ids.get(s) ?? -1;
    },
    str(id) {
      return strs[id];
    },
    get size() {
      return strs.length;
    },
  };
}
