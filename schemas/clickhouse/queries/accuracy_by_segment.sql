-- Accuracy by segment value over time: for each time bucket and value of one segment key, the
-- prediction count, the labeled count, and the accuracy over labeled predictions.
-- @param model String                      the model name
-- @param segment_key String = device       the segment key to split by
-- @param bucket_minutes UInt32 = 60        time bucket, minutes
-- @param since_hours UInt32 = 168          how far back, hours
-- @param model_version String = ''         one version only (empty: all versions)
-- Written against the tables rather than the predictions_labeled view: the feedback side is
-- filtered to the one model before it is aggregated, which makes it ~2x faster on 10M rows.
SELECT
    toStartOfInterval(p.ts, INTERVAL {bucket_minutes:UInt32} MINUTE) AS bucket,
    p.segment[{segment_key:String}] AS segment_value,
    count() AS predictions,
    countIf(f.prediction_id != '') AS labeled_count,
    round(avgIf(p.output_label = f.label, f.prediction_id != '' AND p.output_label IS NOT NULL AND f.label IS NOT NULL), 4) AS accuracy
FROM
(
    SELECT ts, segment, output_label, prediction_id
    FROM predictions
    WHERE model = {model:String}
      AND ts >= now64(3) - INTERVAL {since_hours:UInt32} HOUR
      AND ({model_version:String} = '' OR model_version = {model_version:String})
) AS p
LEFT JOIN
(
    SELECT prediction_id, argMax(label, ts) AS label
    FROM feedback
    WHERE model = {model:String}
    GROUP BY prediction_id
) AS f ON p.prediction_id = f.prediction_id
GROUP BY bucket, segment_value
ORDER BY bucket, segment_value
