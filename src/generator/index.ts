// Public surface of the synthetic traffic generator (rtae produce, --demo-rate, tests, benchmarks).
// Everything here is deterministic from a seed, except the wall-clock drivers' timing.

export { createGenerator, type Generator, type GeneratorOptions, type SimulationOptions } from "./generator.ts";
export { perturb, type PerturbOptions, type Perturbed } from "./perturb.ts";
export { startRealtime, type Realtime, type RealtimeOptions, type Scheduler } from "./realtime.ts";
export { runProducer, parseRetryAfter, type ProducerOptions, type ProducerTarget, type ProducerTotals } from "./producer.ts";
export { createCatalog, CATEGORIES, type Catalog, type CatalogOptions, type Product } from "./catalog.ts";
export { DEFAULT_CAMPAIGNS, DEFAULT_FUNNEL, type Campaign, type FunnelProbabilities } from "./sessions.ts";
export { createPrng, hashSeed, type Prng } from "./prng.ts";
export { createZipf, type Zipf } from "./zipf.ts";
export { createRateShape, type RateShape, type RateShapeOptions } from "./rate-shape.ts";
export { toNdjson, type WireEvent, type WireItem } from "./wire.ts";
export { GeneratorError, type GeneratorErrorCode } from "./errors.ts";
