// Public surface of the window layer: records in, panes, watermark, sessions, queries out.
export * from "./record.ts";
export * from "./aggregator.ts";
export * from "./dictionary.ts";
export * from "./pane.ts";
export * from "./query.ts";
export { createWatermark, type Watermark } from "./watermark.ts";
export { createSessionTable, sessionKey, type SessionTable } from "./sessions.ts";
export { HLL_SEED_LO, HLL_SEED_HI, createHyperLogLog, type HyperLogLog } from "./hyperloglog.ts";
export { createQuantileSketch, type QuantileSketch } from "./quantile-sketch.ts";
