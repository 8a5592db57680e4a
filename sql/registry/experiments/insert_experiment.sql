INSERT INTO experiments (experiment_id, challenger, champion, traffic_share, created_dt, start_dt,
                         max_days, planned_n, alpha, status, end_dt, reason, created_at)
VALUES (:experiment_id, :challenger, :champion, :traffic_share, :created_dt, :start_dt,
        :max_days, :planned_n, :alpha, 'running', NULL, NULL, :at)
