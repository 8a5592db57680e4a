-- Demand forecasting (docs/forecasting.md): the forecasts, their backtest, the replenishment
-- advice, the forecasters' registry, and what only the shop simulator knows (true demand).

-- For each item, category and the whole shop, each of the next days: units with their 10th,
-- 50th and 90th percentiles and their expected value (the replenishment plan's input), and
-- revenue, made on day dt by model_version (the champion).
CREATE TABLE IF NOT EXISTS demand_forecasts (
    dt DATE NOT NULL,
    level VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    target_day DATE NOT NULL,
    units_p10 DOUBLE PRECISION NOT NULL,
    units_p50 DOUBLE PRECISION NOT NULL,
    units_p90 DOUBLE PRECISION NOT NULL,
    units_mean DOUBLE PRECISION NOT NULL,
    revenue_p50 DOUBLE PRECISION NOT NULL,
    model_version VARCHAR NOT NULL
);

-- Each model (the champion, the day's challenger, the baselines) on the same rolling origins.
CREATE TABLE IF NOT EXISTS forecast_backtest (
    dt DATE NOT NULL,
    level VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    model_version VARCHAR,
    origins INTEGER NOT NULL,
    horizon_days INTEGER NOT NULL,
    mase DOUBLE PRECISION,
    wape DOUBLE PRECISION,
    bias DOUBLE PRECISION,
    coverage_80 DOUBLE PRECISION
);

-- Per item: when to reorder and how much, from the forecast's distribution over the lead time.
CREATE TABLE IF NOT EXISTS replenishment_plan (
    dt DATE NOT NULL,
    item_id VARCHAR NOT NULL,
    lead_time_days INTEGER NOT NULL,
    review_days INTEGER NOT NULL,
    service_level DOUBLE PRECISION NOT NULL,
    demand_lead_time DOUBLE PRECISION NOT NULL,
    reorder_point DOUBLE PRECISION NOT NULL,
    order_up_to DOUBLE PRECISION NOT NULL,
    suggested_order_qty DOUBLE PRECISION NOT NULL,
    model_version VARCHAR NOT NULL
);

-- Forecasters with their lineage; which one is the champion is the model_aliases row
-- 'forecast_champion' (moves in alias_history and the audit trail, like the ranker's).
CREATE TABLE IF NOT EXISTS forecast_models (
    model_version VARCHAR NOT NULL,
    dt DATE NOT NULL,
    artefact_uri VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    params_json TEXT NOT NULL,
    lineage_json TEXT NOT NULL,
    n_train_rows BIGINT NOT NULL,
    code_version VARCHAR,
    created_at TIMESTAMP NOT NULL,
    created_by VARCHAR NOT NULL
);

-- The simulator's truth: each item's expected units on the day (written by `flywheel demo`).
CREATE TABLE IF NOT EXISTS simulator_demand (
    dt DATE NOT NULL,
    item_id VARCHAR NOT NULL,
    expected_units DOUBLE PRECISION NOT NULL
);
