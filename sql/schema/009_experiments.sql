-- Online experiments (issue 8): one row per champion-vs-challenger A/B test, one row per
-- metric and daily look, and the evidence behind every promotion decision. Existing
-- registries get the new decision columns through ALTER.
CREATE TABLE IF NOT EXISTS experiments (
    experiment_id VARCHAR NOT NULL,
    challenger VARCHAR NOT NULL,
    champion VARCHAR,
    traffic_share DOUBLE PRECISION NOT NULL,
    created_dt DATE NOT NULL,
    start_dt DATE NOT NULL,
    max_days INTEGER NOT NULL,
    planned_n BIGINT NOT NULL,
    alpha DOUBLE PRECISION NOT NULL,
    status VARCHAR NOT NULL,
    end_dt DATE,
    reason TEXT,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS experiment_results (
    experiment_id VARCHAR NOT NULL,
    dt DATE NOT NULL,
    look INTEGER NOT NULL,
    metric VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    control_mean DOUBLE PRECISION,
    treatment_mean DOUBLE PRECISION,
    effect DOUBLE PRECISION,
    ci_low DOUBLE PRECISION,
    ci_high DOUBLE PRECISION,
    p_value DOUBLE PRECISION,
    p_adjusted DOUBLE PRECISION,
    n_control BIGINT,
    n_treatment BIGINT,
    margin DOUBLE PRECISION,
    outcome VARCHAR NOT NULL,
    note TEXT,
    computed_at TIMESTAMP NOT NULL
);

ALTER TABLE promotion_decisions ADD COLUMN IF NOT EXISTS experiment_id VARCHAR;
ALTER TABLE promotion_decisions ADD COLUMN IF NOT EXISTS evidence_json TEXT;
ALTER TABLE offline_evaluations ADD COLUMN IF NOT EXISTS recall_at_10 DOUBLE PRECISION;
ALTER TABLE offline_evaluations ADD COLUMN IF NOT EXISTS ece DOUBLE PRECISION;
