// Stock levels behind inventory_update events: purchases and offline sales drain stock, occasional restocks refill it.
// Updates favour popular products (same Zipf), so best sellers visibly run low (< 10) within a few thousand events.

import type { Catalog, Product } from "./catalog.ts";
import type { Prng } from "./prng.ts";

export interface Inventory {
  /** Records units sold online. */
  sold(product: Product, quantity: number): void;
  /** Picks a popular product, applies offline sales or a restock, and returns its new stock. */
  update(): { product: Product; stock: number };
  /** Current stock of a product. */
  stock(product: Product): number;
}

const LOW = 10;

/** Creates the stock simulation; initial stock is drawn lazily per product from rng. */
export function createInventory(catalog: Catalog, rng: Prng): Inventory {
  const stock = new Int32Array(catalog.products.length).fill(-1);
  const get = (p: Product): number => {
    if (stock[p.index] < 0) stock[p.index] = rng.between(20, 150);
    return stock[p.index];
  };
  return {
    sold(p, q) {
      stock[p.index] = Math.max(0, get(p) - q);
    },
    update() {
      const p = catalog.samplePopular(rng);
      let s = get(p);
      // Restocks are occasional, so a product usually lingers below the low-stock line for a few updates.
      if ((s < LOW && rng.chance(0.2)) || (s === 0 && rng.chance(0.3))) s += rng.between(80, 300);
      else s = Math.max(0, s - rng.int(4));
      stock[p.index] = s;
      return { product: p, stock: s };
    },
    stock: get,
  };
}
