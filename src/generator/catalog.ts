// The synthetic product catalog: ids "p00001"…, ~40 categories of uneven size, log-normal prices in integer cents.
// Popularity is a seeded permutation of the catalog ranked by Zipf, so the best seller is not always p00001.

import { createPrng, type Prng } from "./prng.ts";
import { createZipf, type Zipf } from "./zipf.ts";

export const CATEGORIES: readonly string[] = Object.freeze([
  "electronics", "phones", "laptops", "audio", "cameras", "gaming", "smart-home", "books",
  "music", "movies", "toys", "baby", "womens-clothing", "mens-clothing", "kids-clothing", "shoes",
  "jewelry", "watches", "bags", "beauty", "skincare", "fragrance", "health", "sports",
  "outdoors", "cycling", "fitness", "home-decor", "kitchen", "furniture", "bedding", "garden",
  "tools", "automotive", "pet-supplies", "grocery", "office", "stationery", "crafts", "party",
]);

export interface Product {
  /** position in the catalog, 0-based */
  readonly index: number;
  readonly id: string;
  readonly category: string;
  /** integer cents, 500..50000 */
  readonly priceCents: number;
  /** currency units with at most 2 decimals (priceCents / 100) */
  readonly price: number;
  /** popularity rank, 0 = most popular */
  readonly rank: number;
}

export interface Catalog {
  readonly products: readonly Product[];
  readonly categories: readonly string[];
  /** product index at each popularity rank */
  readonly byRank: Int32Array;
  readonly popularity: Zipf;
  /** A product drawn by Zipf popularity. */
  samplePopular(rng: Prng): Product;
}

export interface CatalogOptions {
  seed: number;
  /** catalog size, default 10 000 */
  products?: number;
  /** popularity exponent, default 1.1 */
  zipfS?: number;
}

const MIN_CENTS = 500;
const MAX_CENTS = 50_000;

/** Builds the catalog; the same seed and size always give the same products, prices and popularity. */
export function createCatalog(opts: CatalogOptions): Catalog {
  const n = opts.products ?? 10_000;
  const rng = createPrng(opts.seed, "catalog");
  const width = Math.max(5, String(n).length);

  // Category sizes follow a mild power law; each category has its own typical price.
  const catZipf = createZipf(CATEGORIES.length, 0.6);
  const catOrder = shuffled(CATEGORIES.length, rng);
  const catMedian = CATEGORIES.map(() => rng.logNormal(30, 0.5));

  const products: Product[] = new Array(n);
  const byRank = shuffled(n, rng);
  const rankOf = new Int32Array(n);
  for (let r = 0; r < n; r++) rankOf[byRank[r]] = r;
  for (let i = 0; i < n; i++) {
    const c = catOrder[catZipf.sample(rng)];
    const priceCents = roundPrice(rng.logNormal(catMedian[c], 0.8), rng);
    products[i] = Object.freeze({
      index: i,
      id: `p${String(i + 1).padStart(width, "0")}`,
      category: CATEGORIES[c],
      priceCents,
      price: priceCents / 100,
      rank: rankOf[i],
    });
  }
  const popularity = createZipf(n, opts.zipfS ?? 1.1);
  return {
    products,
    categories: CATEGORIES,
    byRank,
    popularity,
    samplePopular: (r) => products[byRank[popularity.sample(r)]],
  };
}

/** Shop-like cents: mostly x.99, some x.49 or whole, the rest arbitrary; clamped to 5.00..500.00. */
function roundPrice(units: number, rng: Prng): number {
  const whole = Math.max(5, Math.min(500, Math.round(units)));
  const style = rng.next();
  let cents: number;
  if (style < 0.6) cents = whole * 100 - 1;
  else if (style < 0.75) cents = whole * 100 - 51;
  else if (style < 0.85) cents = whole * 100;
  else cents = whole * 100 - rng.int(100);
  return Math.max(MIN_CENTS, Math.min(MAX_CENTS, cents));
}

function shuffled(n: number, rng: Prng): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}
