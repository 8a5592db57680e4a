-- One alert (alerts.py); alert_id is the run id, so a sensor re-evaluation adds nothing twice.
INSERT INTO alerts (alert_id, raised_at, kind, job_name, run_id, partition_key, message, details)
SELECT :alert_id, :raised_at, :kind, :job_name, :run_id, :partition_key, :message, :details
WHERE NOT EXISTS (SELECT 1 FROM alerts WHERE alert_id = :alert_id)
