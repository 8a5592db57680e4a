-- The ranking service's request log (flywheel serve -> landing/requests/, the served_requests
-- asset): one row per ranking with its candidate set and served latency. Users pseudonymised.
CREATE TABLE IF NOT EXISTS served_requests (
    dt DATE NOT NULL,
    request_id VARCHAR NOT NULL,
    served_at TIMESTAMP NOT NULL,
    user_id VARCHAR NOT NULL,
    session_id VARCHAR,
    model_version VARCHAR NOT NULL,
    variant VARCHAR NOT NULL,
    experiment_id VARCHAR,
    feature_dt DATE,
    k INTEGER NOT NULL,
    epsilon DOUBLE PRECISION NOT NULL,
    n_candidates INTEGER,
    candidates TEXT,
    latency_ms DOUBLE PRECISION NOT NULL,
    source_file VARCHAR NOT NULL
);
