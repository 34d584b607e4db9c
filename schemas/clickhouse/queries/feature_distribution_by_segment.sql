-- Distribution of one numeric input feature per segment value: count, missing, mean and
-- quantiles — e.g. image_width by device, to see a new camera's inputs.
-- @param model String                      the model name
-- @param feature String                    the numeric input feature
-- @param segment_key String = device       the segment key to split by
-- @param since_hours UInt32 = 168          how far back, hours
SELECT
    segment[{segment_key:String}] AS segment_value,
    model_version,
    count() AS predictions,
    countIf(NOT mapContains(inputs_num, {feature:String})) AS missing,
    round(avgIf(inputs_num[{feature:String}], mapContains(inputs_num, {feature:String})), 4) AS mean,
    arrayMap(x -> round(x, 4), quantilesIf(0.05, 0.5, 0.95)(inputs_num[{feature:String}],
             mapContains(inputs_num, {feature:String}))) AS p05_p50_p95
FROM predictions
WHERE model = {model:String} AND ts >= now64(3) - INTERVAL {since_hours:UInt32} HOUR
GROUP BY segment_value, model_version
ORDER BY segment_value, model_version
