-- A sample of the day's served requests to replay for the latency guardrail.
SELECT request_id
FROM training_examples
WHERE dt = :dt
GROUP BY request_id
ORDER BY request_id
LIMIT :n
