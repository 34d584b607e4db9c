-- The processor's metric snapshots (metric_snapshot.v1); metric names: schemas/METRICS.md.
-- Null metrics (not computable in the window) are left out of the maps; findings kept as JSON.
CREATE TABLE IF NOT EXISTS {database}.metrics
(
    event_id        String,
    ts              DateTime64(3, 'UTC'),
    model           LowCardinality(String),
    model_version   LowCardinality(String),
    segment_key     LowCardinality(Nullable(String)),
    segment_value   Nullable(String),
    window_start    DateTime64(3, 'UTC'),
    window_end      DateTime64(3, 'UTC'),
    window_s        UInt32,
    count           UInt64,
    late_events     UInt64,
    metrics         Map(LowCardinality(String), Float64),
    reference       Map(LowCardinality(String), Float64),
    finding_metrics Array(String),
    finding_kinds   Array(LowCardinality(String)),
    findings_json   String,
    kafka_topic     LowCardinality(String),
    kafka_partition UInt32,
    kafka_offset    UInt64,
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY toDate(window_start)
ORDER BY (model, model_version, window_start)
TTL toDateTime(window_start) + INTERVAL {retention_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;
