-- Error rate per model version and time bucket, from the per-minute rollup.
-- @param model String                      the model name
-- @param bucket_minutes UInt32 = 60        time bucket, minutes
-- @param since_hours UInt32 = 24           how far back, hours
SELECT
    toStartOfInterval(minute, INTERVAL {bucket_minutes:UInt32} MINUTE) AS bucket,
    model_version,
    countMerge(requests) AS requests,
    countMerge(errors) AS errors,
    round(errors / greatest(requests, 1), 4) AS error_rate
FROM predictions_1m
WHERE model = {model:String} AND minute >= now() - INTERVAL {since_hours:UInt32} HOUR
GROUP BY bucket, model_version
ORDER BY bucket, model_version
