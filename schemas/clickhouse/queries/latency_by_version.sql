-- Latency percentiles, throughput and errors per model version and time bucket, from the
-- per-minute rollup (cheap at any history size).
-- @param model String                      the model name
-- @param bucket_minutes UInt32 = 60        time bucket, minutes
-- @param since_hours UInt32 = 24           how far back, hours
SELECT
    toStartOfInterval(minute, INTERVAL {bucket_minutes:UInt32} MINUTE) AS bucket,
    model_version,
    countMerge(requests) AS requests,
    round(quantilesTDigestMerge(0.5, 0.9, 0.99)(latency_ms_q)[1], 2) AS p50_ms,
    round(quantilesTDigestMerge(0.5, 0.9, 0.99)(latency_ms_q)[2], 2) AS p90_ms,
    round(quantilesTDigestMerge(0.5, 0.9, 0.99)(latency_ms_q)[3], 2) AS p99_ms
FROM predictions_1m
WHERE model = {model:String} AND minute >= now() - INTERVAL {since_hours:UInt32} HOUR
GROUP BY bucket, model_version
ORDER BY bucket, model_version
