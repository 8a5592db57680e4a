-- One alert (alerts.py); alert_id is the run id, so a sensor re-evaluation adds nothing twice.
-- Casts: PostgreSQL must know each parameter's type where it is only selected.
INSERT INTO alerts (alert_id, raised_at, kind, job_name, run_id, partition_key, message, details)
SELECT CAST(:alert_id AS VARCHAR), CAST(:raised_at AS TIMESTAMP), CAST(:kind AS VARCHAR),
       CAST(:job_name AS VARCHAR), CAST(:run_id AS VARCHAR), CAST(:partition_key AS VARCHAR),
       CAST(:message AS TEXT), CAST(:details AS TEXT)
WHERE NOT EXISTS (SELECT 1 FROM alerts WHERE alert_id = CAST(:alert_id AS VARCHAR))
