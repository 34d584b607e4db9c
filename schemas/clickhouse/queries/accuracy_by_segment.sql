-- Accuracy by segment value over time: for each time bucket and value of one segment key, the
-- prediction count, the labeled count, and the accuracy over labeled predictions.
-- @param model String                      the model name
-- @param segment_key String = device       the segment key to split by
-- @param bucket_minutes UInt32 = 60        time bucket, minutes
-- @param since_hours UInt32 = 168          how far back, hours
-- @param model_version String = ''         one version only (empty: all versions)
SELECT
    toStartOfInterval(ts, INTERVAL {bucket_minutes:UInt32} MINUTE) AS bucket,
    segment[{segment_key:String}] AS segment_value,
    count() AS predictions,
    countIf(labeled) AS labeled_count,
    round(avgIf(correct, labeled AND correct IS NOT NULL), 4) AS accuracy
FROM predictions_labeled
WHERE model = {model:String}
  AND ts >= now64(3) - INTERVAL {since_hours:UInt32} HOUR
  AND ({model_version:String} = '' OR model_version = {model_version:String})
GROUP BY bucket, segment_value
ORDER BY bucket, segment_value
