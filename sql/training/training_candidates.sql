-- The `candidates` relation for training: examples of the days in the window, keyed so that
-- feature_vector.sql can join them. Each day carries its own feature snapshot (feature_dt).
SELECT request_id, user_id, item_id, position, event_time, feature_dt, dt, session_id,
       propensity, label_click, label_purchase
FROM training_examples
WHERE dt >= :start_dt AND dt <= :end_dt
