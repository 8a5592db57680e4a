SELECT experiment_id, challenger, champion, traffic_share, created_dt, start_dt, max_days,
       planned_n, alpha, status, end_dt, reason
FROM experiments
WHERE experiment_id = :experiment_id
