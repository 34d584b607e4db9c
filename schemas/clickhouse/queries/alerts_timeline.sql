-- Every alert state change and delivery attempt, newest first, one row per alert instance.
-- @param since_hours UInt32 = 72           how far back, hours
-- @param model String = ''                 one model only (empty: all)
SELECT
    ts,
    receiver,
    status AS notification_status,
    rule,
    alert_state,
    severity,
    model,
    segment,
    value,
    delivery_outcome,
    delivery_attempt,
    delivery_http_status
FROM alerts
ARRAY JOIN
    alert_rule AS rule,
    alert_status AS alert_state,
    alert_severity AS severity,
    alert_model AS model,
    alert_segment AS segment,
    alert_value AS value
WHERE ts >= now64(3) - INTERVAL {since_hours:UInt32} HOUR
  AND ({model:String} = '' OR model = {model:String})
ORDER BY ts DESC
