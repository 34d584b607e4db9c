-- Cluster variant: Replicated*MergeTree per shard (<table>_local) + a Distributed <table>. See docs/sql.md.
-- Per-minute rollup per model and version, filled by a materialized view on every insert.
-- Read it with countMerge(requests), countMerge(errors), quantilesTDigestMerge(0.5, 0.9, 0.99)(latency_ms_q).
CREATE TABLE IF NOT EXISTS {database}.predictions_1m_local ON CLUSTER '{cluster}'
(
    minute        DateTime('UTC'),
    model         LowCardinality(String),
    model_version LowCardinality(String),
    requests      AggregateFunction(count),
    errors        AggregateFunction(countIf, UInt8),
    latency_ms_q  AggregateFunction(quantilesTDigest(0.5, 0.9, 0.99), Nullable(Float64))
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/predictions_1m_local', '{replica}')
PARTITION BY toDate(minute)
ORDER BY (model, model_version, minute)
TTL minute + INTERVAL {retention_days} DAY
-- Replicated tables deduplicate retried inserts by token natively (replicated_deduplication_window).
SETTINGS replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.predictions_1m_mv ON CLUSTER '{cluster}' TO {database}.predictions_1m_local AS
SELECT
    toStartOfMinute(toDateTime(ts)) AS minute,
    model,
    model_version,
    countState() AS requests,
    countIfState(toUInt8(error IS NOT NULL)) AS errors,
    quantilesTDigestState(0.5, 0.9, 0.99)(latency_ms) AS latency_ms_q
FROM {database}.predictions_local
GROUP BY minute, model, model_version;

CREATE TABLE IF NOT EXISTS {database}.predictions_1m ON CLUSTER '{cluster}' AS {database}.predictions_1m_local
ENGINE = Distributed('{cluster}', '{database}', 'predictions_1m_local', cityHash64(model));
