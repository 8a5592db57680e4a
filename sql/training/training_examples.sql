-- Labelled examples for day :dt: every logged impression, labelled by whether the same
-- request led to a click / purchase of that item within :label_window_seconds of the
-- impression, with the logging policy's propensity, model version and variant (what off-policy
-- evaluation needs), and the feature snapshot it may use (:feature_dt, the day before).
-- Labels are as known at the day's close: feedback that arrives in a later partition does not
-- relabel a day that has been trained on.
INSERT INTO training_examples (
    dt, feature_dt, request_id, user_id, item_id, event_time, position, propensity,
    model_version, variant, label_click, label_purchase, session_id
)
WITH imp AS (
    SELECT request_id, user_id, item_id, event_time, position, propensity, model_version,
           variant, session_id
    FROM events
    WHERE dt = :dt AND event_type = 'impression' AND request_id IS NOT NULL
),
fb AS (
    SELECT i.request_id, i.item_id, i.event_time,
           MAX(CASE WHEN f.event_type = 'click' THEN 1 ELSE 0 END) AS clicked,
           MAX(CASE WHEN f.event_type = 'purchase' THEN 1 ELSE 0 END) AS purchased
    FROM imp i
    JOIN events f ON f.request_id = i.request_id AND f.item_id = i.item_id
    WHERE f.dt = :dt AND f.event_type IN ('click', 'purchase')
      AND EXTRACT(EPOCH FROM (f.event_time - i.event_time)) <= :label_window_seconds
    GROUP BY i.request_id, i.item_id, i.event_time
)
SELECT CAST(:dt AS DATE), CAST(:feature_dt AS DATE), i.request_id, i.user_id, i.item_id,
       i.event_time, i.position, i.propensity, i.model_version, i.variant,
       COALESCE(fb.clicked, 0), COALESCE(fb.purchased, 0), i.session_id
FROM imp i
LEFT JOIN fb
       ON fb.request_id = i.request_id AND fb.item_id = i.item_id
      AND fb.event_time = i.event_time
