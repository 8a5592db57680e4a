-- Alerts raised by the run-failure sensor (flywheel_assets/alerts.py). Written here when the
-- warehouse takes concurrent writers (PostgreSQL); always also to FLYWHEEL_HOME/alerts/.
CREATE TABLE IF NOT EXISTS alerts (
    alert_id VARCHAR NOT NULL,
    raised_at TIMESTAMP NOT NULL,
    kind VARCHAR NOT NULL,
    job_name VARCHAR,
    run_id VARCHAR,
    partition_key VARCHAR,
    message TEXT NOT NULL,
    details TEXT NOT NULL
);
