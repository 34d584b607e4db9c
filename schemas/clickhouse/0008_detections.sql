-- The processor's sequential detections (detection.v1): a detector that tripped (status 'detected') or came
-- back within the reference ('cleared'), per model version and segment value (both null: the whole version).
-- The evidence is unpacked into parallel arrays (ARRAY JOIN them). Replacing by (model, version, ts,
-- event_id): a detection re-emitted after a processor restart (same deterministic id) counts once.
CREATE TABLE IF NOT EXISTS {database}.detections
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
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (model, model_version, ts, event_id)
TTL toDateTime(ts) + INTERVAL {retention_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;
