-- Served latency of an experiment's arms on one day, as the ranking service measured it
-- (served_requests), for the latency guardrail; the latest request of a repeated id counts.
SELECT variant, latency_ms
FROM served_requests
WHERE dt = :dt AND experiment_id = :experiment_id
  AND ((variant = 'champion' AND model_version = :champion)
    OR (variant = 'challenger' AND model_version = :challenger))
ORDER BY served_at
