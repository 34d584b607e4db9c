-- Ground truth (feedback.v1). The latest feedback per prediction wins (version column: ts).
-- Not partitioned by time: feedback for one prediction may come days apart and
-- ReplacingMergeTree only collapses rows inside one partition.
CREATE TABLE IF NOT EXISTS {database}.feedback
(
    event_id        String,
    prediction_id   String,
    ts              DateTime64(3, 'UTC'),
    model           LowCardinality(String),
    model_version   LowCardinality(Nullable(String)),
    label           Nullable(String),
    value           Nullable(Float64),
    tags            Map(LowCardinality(String), String),
    kafka_topic     LowCardinality(String),
    kafka_partition UInt32,
    kafka_offset    UInt64,
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ts)
ORDER BY (model, prediction_id)
TTL toDateTime(ts) + INTERVAL {retention_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;
