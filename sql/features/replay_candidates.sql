-- The first :n_requests of day :dt's served requests (by id), as the `candidates` relation of
-- feature_vector.sql: the latency guardrail replays only these through both arms' models.
SELECT request_id, user_id, item_id, position, event_time, feature_dt, dt, session_id,
       propensity, label_click, label_purchase
FROM training_examples
WHERE dt = :dt
  AND request_id IN (
      SELECT request_id FROM training_examples WHERE dt = :dt
      GROUP BY request_id ORDER BY request_id LIMIT :n_requests
  )
