// Embedded HotCache: latest value per topic and synchronous in-process publish/subscribe of deltas.
// The Redis implementation (distributed mode) keeps the same contract across instances.

import type { HotCache } from "./types.ts";

export function createMemoryHotCache(): HotCache {
  const values = new Map<string, unknown>();
  const subs = new Map<string, Set<(m: string) => void>>();
  return {
    set(topic, value) {
      values.set(topic, value);
    },
    get(topic) {
      return values.get(topic);
    },
    publish(channel, message) {
      const set = subs.get(channel);
      if (!set) return;
      for (const fn of set) {
        try {
          fn(message);
        } catch {
          // one failing subscriber must not starve the others
        }
      }
    },
    subscribe(channel, fn) {
      let set = subs.get(channel);
      if (!set) subs.set(channel, (set = new Set()));
      set.add(fn);
      return () => set.delete(fn);
    },
    async close() {
      values.clear();
      subs.clear();
    },
  };
}
