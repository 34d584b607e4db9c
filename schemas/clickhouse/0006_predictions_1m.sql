-- Per-minute rollup per model and version, filled by a materialized view on every insert.
-- Read it with countMerge(requests), countMerge(errors), quantilesTDigestMerge(0.5, 0.9, 0.99)(latency_ms_q).
CREATE TABLE IF NOT EXISTS {database}.predictions_1m
(
    minute        DateTime('UTC'),
    model         LowCardinality(String),
    model_version LowCardinality(String),
    requests      AggregateFunction(count),
    errors        AggregateFunction(countIf, UInt8),
    latency_ms_q  AggregateFunction(quantilesTDigest(0.5, 0.9, 0.99), Nullable(Float64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toDate(minute)
ORDER BY (model, model_version, minute)
TTL minute + INTERVAL {retention_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.predictions_1m_mv TO {database}.predictions_1m AS
SELECT
    toStartOfMinute(toDateTime(ts)) AS minute,
    model,
    model_version,
    countState() AS requests,
    countIfState(toUInt8(error IS NOT NULL)) AS errors,
    quantilesTDigestState(0.5, 0.9, 0.99)(latency_ms) AS latency_ms_q
FROM {database}.predictions
GROUP BY minute, model, model_version;
