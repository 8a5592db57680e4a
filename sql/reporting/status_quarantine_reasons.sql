-- Open quarantined rows by reason over [:from_dt, :to_dt] (`flywheel status`).
SELECT reason, COUNT(*) AS n_rows, MIN(dt) AS first_dt, MAX(dt) AS last_dt
FROM quarantine_open
WHERE dt >= :from_dt AND dt <= :to_dt
GROUP BY reason
ORDER BY n_rows DESC, reason
