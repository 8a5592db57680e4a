-- Served latency of an experiment's arms on one day, as the ranking service measured it
-- (served_requests: its own time per request, HTTP and queueing excluded), for the latency
-- guardrail: at most :per_arm requests per arm, a pseudo-random sample (request ids are random).
SELECT variant, latency_ms
FROM (
    SELECT variant, latency_ms,
           ROW_NUMBER() OVER (PARTITION BY variant ORDER BY request_id) AS n
    FROM served_requests
    WHERE dt = :dt AND experiment_id = :experiment_id
      AND ((variant = 'champion' AND model_version = :champion)
        OR (variant = 'challenger' AND model_version = :challenger))
) s
WHERE n <= :per_arm
