-- Data quality: quarantine releases, the audit trail, and model score samples for drift.

-- A quarantined event row, fixed and released by a person (`flywheel quarantine release`).
-- The fixed row is stored here, validated and pseudonymised; raw_events of the day re-adds it
-- on every materialisation while the quarantine row it fixes (same dt, source_file, line_no)
-- exists, so re-ingesting the day's files keeps the release and the accounting balances:
-- landed = raw (including released rows) + open quarantine.
CREATE TABLE IF NOT EXISTS quarantine_releases (
    release_id VARCHAR NOT NULL,
    dt DATE NOT NULL,
    source_file VARCHAR NOT NULL,
    line_no BIGINT NOT NULL,
    reason VARCHAR NOT NULL,
    event_id VARCHAR NOT NULL,
    event_type VARCHAR NOT NULL,
    event_time TIMESTAMP NOT NULL,
    user_id VARCHAR NOT NULL,
    item_id VARCHAR NOT NULL,
    session_id VARCHAR,
    request_id VARCHAR,
    position INTEGER,
    propensity DOUBLE PRECISION,
    model_version VARCHAR,
    variant VARCHAR,
    price DOUBLE PRECISION,
    released_at TIMESTAMP NOT NULL,
    released_by VARCHAR NOT NULL,
    why TEXT NOT NULL
);

-- Append-only record of what people and jobs changed: who, when, what, why. Nothing in
-- flywheel updates or deletes it (PostgreSQL roles enforce that in production).
CREATE TABLE IF NOT EXISTS audit_log (
    logged_at TIMESTAMP NOT NULL,
    actor VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    subject VARCHAR NOT NULL,
    details TEXT NOT NULL,
    why TEXT NOT NULL
);

-- A deterministic sample of each day's model scores on the holdout, per role, so score drift
-- compares a day with the days before it without re-scoring them.
CREATE TABLE IF NOT EXISTS score_samples (
    dt DATE NOT NULL,
    role VARCHAR NOT NULL,
    model_version VARCHAR NOT NULL,
    score DOUBLE PRECISION NOT NULL
);

-- Quarantine rows still open: every row except the ingestion- and Kafka-stage rows a release
-- fixed (those now count in raw_events). The one definition of "open" the checks, the
-- accounting and the release command share.
CREATE OR REPLACE VIEW quarantine_open AS
SELECT q.dt, q.source, q.stage, q.source_file, q.line_no, q.reason, q.payload, q.quarantined_at
FROM quarantine q
WHERE NOT (q.stage IN ('ingestion', 'kafka')
           AND EXISTS (SELECT 1 FROM quarantine_releases r
                       WHERE r.dt = q.dt AND r.source_file = q.source_file
                         AND r.line_no = q.line_no));
