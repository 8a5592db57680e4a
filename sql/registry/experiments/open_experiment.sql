-- Any experiment still running (started or about to start), whatever its first day.
SELECT experiment_id, challenger, champion, traffic_share, created_dt, start_dt, max_days,
       planned_n, alpha, status, end_dt, reason
FROM experiments
WHERE status = 'running'
ORDER BY start_dt DESC
LIMIT 1
