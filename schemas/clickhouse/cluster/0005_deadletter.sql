-- Cluster variant: Replicated*MergeTree per shard (<table>_local) + a Distributed <table>. See docs/sql.md.
-- Messages that could not be processed (deadletter.v1), with the original bytes in base64.
-- Replacing by event_id: a dead letter re-sent after a crash (same deterministic id) counts once.
CREATE TABLE IF NOT EXISTS {database}.deadletter_local ON CLUSTER '{cluster}'
(
    event_id         String,
    ts               DateTime64(3, 'UTC'),
    stage            LowCardinality(String),
    reason           String,
    error_path       Nullable(String),
    source_topic     LowCardinality(Nullable(String)),
    source_partition Nullable(UInt32),
    source_offset    Nullable(UInt64),
    expected_schema  LowCardinality(Nullable(String)),
    key_b64          Nullable(String),
    payload_b64      String,
    kafka_topic      LowCardinality(String),
    kafka_partition  UInt32,
    kafka_offset     UInt64,
    inserted_at      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/deadletter_local', '{replica}')
ORDER BY (stage, event_id)
TTL toDateTime(ts) + INTERVAL {retention_days} DAY
-- Replicated tables deduplicate retried inserts by token natively (replicated_deduplication_window).
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS {database}.deadletter ON CLUSTER '{cluster}' AS {database}.deadletter_local
ENGINE = Distributed('{cluster}', '{database}', 'deadletter_local', cityHash64(event_id));
