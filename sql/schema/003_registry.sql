-- Model registry, aliases with full history, evaluations and promotion decisions.

CREATE TABLE IF NOT EXISTS model_registry (
    model_version VARCHAR NOT NULL,
    dt DATE NOT NULL,
    artefact_uri VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    objective VARCHAR NOT NULL,
    label VARCHAR NOT NULL,
    params_json TEXT NOT NULL,
    metrics_json TEXT NOT NULL,
    features_json TEXT NOT NULL,
    training_partitions_json TEXT NOT NULL,
    n_train_rows BIGINT NOT NULL,
    n_valid_rows BIGINT NOT NULL,
    code_version VARCHAR,
    champion_at_training VARCHAR,
    created_at TIMESTAMP NOT NULL,
    created_by VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS model_aliases (
    alias VARCHAR NOT NULL,
    model_version VARCHAR NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS alias_history (
    alias VARCHAR NOT NULL,
    from_version VARCHAR,
    to_version VARCHAR,
    moved_at TIMESTAMP NOT NULL,
    moved_by VARCHAR NOT NULL,
    reason TEXT NOT NULL,
    dt DATE
);

CREATE TABLE IF NOT EXISTS offline_evaluations (
    dt DATE NOT NULL,
    model_version VARCHAR NOT NULL,
    role VARCHAR NOT NULL,
    n_rows BIGINT NOT NULL,
    auc DOUBLE PRECISION,
    log_loss DOUBLE PRECISION,
    ndcg_at_10 DOUBLE PRECISION,
    snips_value DOUBLE PRECISION,
    evaluated_at TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS promotion_decisions (
    dt DATE NOT NULL,
    challenger VARCHAR,
    champion_before VARCHAR,
    champion_after VARCHAR,
    decision VARCHAR NOT NULL,
    reason TEXT NOT NULL,
    decided_at TIMESTAMP NOT NULL
);
