-- Predictions joined to their latest feedback (by model and prediction_id).
-- labeled = feedback exists; correct = the predicted label equals the true label (null when unlabeled
-- or when the model is a regressor); abs_error for regressors.
CREATE VIEW IF NOT EXISTS {database}.predictions_labeled AS
SELECT
    p.*,
    f.prediction_id != '' AS labeled,
    if(labeled, f.label, NULL) AS feedback_label,
    if(labeled, f.value, NULL) AS feedback_value,
    if(labeled, f.feedback_ts, NULL) AS feedback_ts,
    if(labeled AND p.output_label IS NOT NULL AND f.label IS NOT NULL,
       toNullable(p.output_label = f.label), NULL) AS correct,
    if(labeled AND p.output_value IS NOT NULL AND f.value IS NOT NULL,
       abs(p.output_value - f.value), NULL) AS abs_error
FROM {database}.predictions AS p
LEFT JOIN
(
    SELECT model, prediction_id,
           argMax(label, ts) AS label, argMax(value, ts) AS value, max(ts) AS feedback_ts
    FROM {database}.feedback
    GROUP BY model, prediction_id
) AS f ON p.model = f.model AND p.prediction_id = f.prediction_id;
