-- The experiment that served day :dt: started on or before it and not ended before it
-- (an experiment ended by day :dt's decision still served day :dt).
SELECT experiment_id, challenger, champion, traffic_share, created_dt, start_dt, max_days,
       planned_n, alpha, status, end_dt, reason
FROM experiments
WHERE start_dt <= :dt AND (end_dt IS NULL OR end_dt >= :dt) AND status <> 'stopped'
ORDER BY start_dt DESC
LIMIT 1
