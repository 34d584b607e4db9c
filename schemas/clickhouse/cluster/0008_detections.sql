-- Cluster variant: Replicated*MergeTree per shard (<table>_local) + a Distributed <table>. See docs/sql.md.
-- The processor's sequential detections (detection.v1): a detector that tripped (status 'detected') or came
-- back within the reference ('cleared'), per model version and segment value (both null: the whole version).
-- The evidence is unpacked into parallel arrays (ARRAY JOIN them). Replacing by (model, version, ts,
-- event_id): a detection re-emitted after a processor restart (same deterministic id) counts once; the
-- sharding key is the model, so a model's repeats meet in one shard.
CREATE TABLE IF NOT EXISTS {database}.detections_local ON CLUSTER '{cluster}'
(
    event_id         String,
    ts               DateTime64(3, 'UTC'),
    model            LowCardinality(String),
    model_version    LowCardinality(String),
    segment_key      LowCardinality(Nullable(String)),
    segment_value    Nullable(String),
    new_segment      Bool,
    signal           LowCardinality(String),
    metric           LowCardinality(String),
    detector         LowCardinality(String),
    status           LowCardinality(String),
    statistic        Float64,
    threshold        Float64,
    false_alarm_rate Nullable(Float64),
    events           UInt64,
    labels           Nullable(UInt64),
    change_ts        Nullable(DateTime64(3, 'UTC')),
    value            Nullable(Float64),
    reference        Nullable(Float64),
    evidence_names   Array(String),
    evidence_scores  Array(Float64),
    kafka_topic      LowCardinality(String),
    kafka_partition  UInt32,
    kafka_offset     UInt64,
    inserted_at      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/detections_local', '{replica}')
PARTITION BY toDate(ts)
ORDER BY (model, model_version, ts, event_id)
TTL toDateTime(ts) + INTERVAL {retention_days} DAY
-- Replicated tables deduplicate retried inserts by token natively (replicated_deduplication_window).
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS {database}.detections ON CLUSTER '{cluster}' AS {database}.detections_local
ENGINE = Distributed('{cluster}', '{database}', 'detections_local', cityHash64(model));
