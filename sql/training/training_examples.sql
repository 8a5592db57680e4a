-- Labelled examples for day :dt: every logged impression, labelled by whether the same
-- request showed a click / purchase of that item, with the logging policy's propensity,
-- model version and variant, and the feature snapshot it may use (:feature_dt, the day before).
INSERT INTO training_examples
WITH fb AS (
    SELECT request_id, item_id,
           MAX(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END) AS clicked,
           MAX(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchased
    FROM events
    WHERE dt = :dt AND request_id IS NOT NULL AND event_type IN ('click', 'purchase')
    GROUP BY request_id, item_id
)
SELECT CAST(:dt AS DATE), CAST(:feature_dt AS DATE), e.request_id, e.user_id, e.item_id,
       e.event_time, e.position, e.propensity, e.model_version, e.variant,
       COALESCE(fb.clicked, 0), COALESCE(fb.purchased, 0)
FROM events e
LEFT JOIN fb ON fb.request_id = e.request_id AND fb.item_id = e.item_id
WHERE e.dt = :dt AND e.event_type = 'impression' AND e.request_id IS NOT NULL
