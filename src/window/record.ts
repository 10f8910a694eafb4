// Layout of the fixed-size records that ingest workers write into the SharedArrayBuffer rings
// and the window aggregator reads in place. 16 x 32-bit words = 64 bytes; f64 fields sit on even words.

export const RECORD_WORDS = 16;

/** word 0: low byte = kind, bit 8 = last record of its event (the offset is complete after it). */
export const W_KIND = 0;
export const W_PARTITION = 1;
/** f64 at word 2 (f64 index = word >> 1): log offset of the source event. */
export const W_OFFSET = 2;
/** f64 at word 4: event time, epoch ms. */
export const W_TIME = 4;
export const W_USER_LO = 6;
export const W_USER_HI = 7;
export const W_SESSION_LO = 8;
export const W_SESSION_HI = 9;
/** Interned (worker-local) string ids, -1 when absent. */
export const W_PRODUCT = 10;
/** -1: workers do not intern categories while no metric reads them (each would only hold memory) */
export const W_CATEGORY = 11;
export const W_SOURCE = 12;
/** price in integer cents (purchase item, product events). */
export const W_PRICE = 13;
/** quantity, or stock for inventory_update. */
export const W_QTY = 14;
/** page load time in microseconds, -1 when absent. */
export const W_LOAD_US = 15;

/** Event type names by kind; the contract's list (ingest's EVENT_TYPES, asserted equal in its tests). */
export const TYPES = [
  "page_view",
  "product_view",
  "add_to_cart",
  "remove_from_cart",
  "checkout",
  "purchase",
  "inventory_update",
] as const;

/** Kinds 0..6 are the event types in TYPES order. */
export const K_PAGE_VIEW = 0;
export const K_PRODUCT_VIEW = 1;
export const K_ADD_TO_CART = 2;
export const K_REMOVE_FROM_CART = 3;
export const K_CHECKOUT = 4;
export const K_PURCHASE = 5;
export const K_INVENTORY = 6;
/** One purchase line item; follows its K_PURCHASE header record. */
export const K_ITEM = 7;
/** A duplicate dropped by eventId: counted in the window of its event time, nothing else. */
export const K_DUPLICATE = 8;
/** A record the worker could not use (already dead-lettered): advances the offset only. */
export const K_SKIP = 9;

export const KIND_MASK = 0xff;
export const FLAG_END = 1 << 8;

/** Strings travel in a second ring of wider records: [localId, byteLength, utf8 bytes...]. */
export const DICT_RECORD_WORDS = 256;
export const DICT_MAX_BYTES = (DICT_RECORD_WORDS - 2) * 4;
