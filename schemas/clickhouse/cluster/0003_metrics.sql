-- Cluster variant: Replicated*MergeTree per shard (<table>_local) + a Distributed <table>. See docs/sql.md.
-- The processor's metric snapshots (metric_snapshot.v1); metric names: schemas/METRICS.md.
-- Null metrics (not computable in the window) are left out of the maps; findings kept as JSON.
CREATE TABLE IF NOT EXISTS {database}.metrics_local ON CLUSTER '{cluster}'
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
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/metrics_local', '{replica}')
PARTITION BY toDate(window_start)
ORDER BY (model, model_version, window_start)
TTL toDateTime(window_start) + INTERVAL {retention_days} DAY
-- Replicated tables deduplicate retried inserts by token natively (replicated_deduplication_window).
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS {database}.metrics ON CLUSTER '{cluster}' AS {database}.metrics_local
ENGINE = Distributed('{cluster}', '{database}', 'metrics_local', cityHash64(model));
