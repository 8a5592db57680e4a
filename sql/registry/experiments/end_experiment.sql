UPDATE experiments SET status = :status, end_dt = :end_dt, reason = :reason
WHERE experiment_id = :experiment_id AND status = 'running'
