// Every Prometheus metric name rtae exports, in one module, so dashboards and alerts have a single
// place to look. Names follow Prometheus conventions: `rtae_` prefix, base units, `_total` on counters.

export const METRIC_PREFIX = "rtae_";

export const INGEST_EVENTS_TOTAL = "rtae_ingest_events_total";
export const INGEST_REQUESTS_TOTAL = "rtae_ingest_requests_total";
export const INGEST_REJECTED_TOTAL = "rtae_ingest_rejected_total";
export const EVENTS_PROCESSED_TOTAL = "rtae_events_processed_total";
export const EVENTS_INVALID_TOTAL = "rtae_events_invalid_total";
export const DUPLICATES_TOTAL = "rtae_duplicates_total";
export const DEAD_LETTERS_TOTAL = "rtae_dead_letters_total";
export const LATE_EVENTS_TOTAL = "rtae_late_events_total";
export const WATERMARK_SECONDS = "rtae_watermark_seconds";
export const EVENT_TIME_LAG_SECONDS = "rtae_event_time_lag_seconds";
export const CONSUMER_LAG_RECORDS = "rtae_consumer_lag_records";
export const FRESHNESS_SECONDS = "rtae_freshness_seconds";
export const WINDOW_FLUSH_DURATION_SECONDS = "rtae_window_flush_duration_seconds";
export const CHECKPOINTS_TOTAL = "rtae_checkpoints_total";
export const STORE_OPERATION_DURATION_SECONDS = "rtae_store_operation_duration_seconds";
export const CIRCUIT_STATE = "rtae_circuit_state";
export const PARTITIONS_OWNED = "rtae_partitions_owned";
export const EVENTS_COUNTED_TOTAL = "rtae_events_counted_total";
export const ORDERS_TOTAL = "rtae_orders_total";
export const REVENUE_TOTAL = "rtae_revenue_total";
export const STREAM_CLIENTS = "rtae_stream_clients";
export const STREAM_RESYNCS_TOTAL = "rtae_stream_resyncs_total";
export const STREAM_DROPS_TOTAL = "rtae_stream_drops_total";
export const RING_USED_RECORDS = "rtae_ring_used_records";
export const OPEN_SESSIONS = "rtae_open_sessions";
export const DICTIONARY_IDS = "rtae_dictionary_ids";
export const LIVE_PANES = "rtae_live_panes";

/** Buckets of the event-accepted → delta-published histogram: 5 ms … 5 s. */
export const FRESHNESS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] as const;
/** Buckets of checkpoint and store-operation durations: 1 ms … 5 s. */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] as const;
