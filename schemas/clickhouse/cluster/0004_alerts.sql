-- Cluster variant: Replicated*MergeTree per shard (<table>_local) + a Distributed <table>. See docs/sql.md.
-- Every notification and each delivery attempt with its outcome (alert.v1).
-- The alert instances are unpacked into parallel arrays (ARRAY JOIN them); the full list is kept as JSON.
CREATE TABLE IF NOT EXISTS {database}.alerts_local ON CLUSTER '{cluster}'
(
    event_id             String,
    ts                   DateTime64(3, 'UTC'),
    idempotency_key      String,
    receiver             LowCardinality(String),
    status               LowCardinality(String),
    group_key            String,
    group_labels         Map(LowCardinality(String), String),
    alert_fingerprint    Array(String),
    alert_rule           Array(LowCardinality(String)),
    alert_status         Array(LowCardinality(String)),
    alert_severity       Array(LowCardinality(String)),
    alert_model          Array(Nullable(String)),
    alert_model_version  Array(Nullable(String)),
    alert_segment        Array(Nullable(String)),
    alert_value          Array(Nullable(Float64)),
    alerts_json          String,
    delivery_attempt     Nullable(UInt32),
    delivery_outcome     LowCardinality(Nullable(String)),
    delivery_http_status Nullable(Int32),
    delivery_error       Nullable(String),
    delivery_duration_ms Nullable(Float64),
    kafka_topic          LowCardinality(String),
    kafka_partition      UInt32,
    kafka_offset         UInt64,
    inserted_at          DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/alerts_local', '{replica}')
PARTITION BY toDate(ts)
ORDER BY (receiver, ts)
TTL toDateTime(ts) + INTERVAL {retention_days} DAY
-- Replicated tables deduplicate retried inserts by token natively (replicated_deduplication_window).
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS {database}.alerts ON CLUSTER '{cluster}' AS {database}.alerts_local
ENGINE = Distributed('{cluster}', '{database}', 'alerts_local', cityHash64(group_key));
