-- Purchase likelihood (docs/likelihood.md): who will buy in the next 7 and 30 days, the
-- backtest that decides which model serves, and the registered models.

-- Per active user on day dt: the calibrated probability of at least one purchase on
-- dt + 1 .. dt + 7 and dt + 1 .. dt + 30, and the decile of p_30d among the day's users
-- (1 = the most likely tenth). user_id is the keyed pseudonym, as everywhere.
CREATE TABLE IF NOT EXISTS purchase_likelihood (
    dt DATE NOT NULL,
    user_id VARCHAR NOT NULL,
    p_7d DOUBLE PRECISION NOT NULL,
    p_30d DOUBLE PRECISION NOT NULL,
    decile INTEGER NOT NULL,
    model_version VARCHAR NOT NULL
);

-- The challenger's and the champion's specifications and the RFM baseline on the same
-- held-out days (the RFM score ranks only: no log loss or ECE), with the reliability table
-- (10 equal-count bins: predicted, observed, rows) and the cumulative gains (share of buyers
-- in each top tenth of users) as JSON, for the model's page.
CREATE TABLE IF NOT EXISTS likelihood_backtest (
    dt DATE NOT NULL,
    horizon_days INTEGER NOT NULL,
    model VARCHAR NOT NULL,
    model_version VARCHAR,
    days INTEGER NOT NULL,
    rows BIGINT NOT NULL,
    base_rate DOUBLE PRECISION NOT NULL,
    auc DOUBLE PRECISION,
    log_loss DOUBLE PRECISION,
    ece DOUBLE PRECISION,
    lift_top10 DOUBLE PRECISION,
    reliability_json TEXT,
    gains_json TEXT
);

-- Models with their lineage; the champion is the model_aliases row
-- 'purchase_likelihood_champion' (moves in alias_history and the audit trail).
CREATE TABLE IF NOT EXISTS likelihood_models (
    model_version VARCHAR NOT NULL,
    dt DATE NOT NULL,
    artefact_uri VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    params_json TEXT NOT NULL,
    lineage_json TEXT NOT NULL,
    metrics_json TEXT NOT NULL,
    code_version VARCHAR,
    created_at TIMESTAMP NOT NULL,
    created_by VARCHAR NOT NULL
);
