-- Analysts read masked views in their own schema, never the tables: no raw payloads (the
-- quarantine's payload and the Kafka rows can hold personal data from before pseudonymisation),
-- no source paths, no pseudonymisation secrets (those never reach the warehouse at all). Every view
-- names its columns: a column added to a table later is not shown until it is reviewed here. Views
-- run with their owner's rights, so the analyst needs no privilege on the tables underneath.
CREATE SCHEMA IF NOT EXISTS analyst AUTHORIZATION {owner};
-- (A schema made by an earlier version belonged to the administrator: the owner takes it.)
ALTER SCHEMA analyst OWNER TO {owner};
CREATE OR REPLACE VIEW analyst.events AS
    SELECT dt, event_id, event_type, event_time, user_id, item_id, session_id, request_id,
           position, propensity, model_version, variant, price, quantity
    FROM events;
CREATE OR REPLACE VIEW analyst.items AS
    SELECT dt, item_id, title, category, brand, price, valid_from
    FROM items;
CREATE OR REPLACE VIEW analyst.users AS
    SELECT dt, user_id, region, device, signup_date
    FROM users;
CREATE OR REPLACE VIEW analyst.orders AS
    SELECT dt, order_id, user_id, item_id, quantity, price, order_time
    FROM orders;
CREATE OR REPLACE VIEW analyst.quarantine AS
    SELECT dt, source, stage, reason, quarantined_at FROM quarantine;
CREATE OR REPLACE VIEW analyst.ingestion_accounting AS
    SELECT dt, source, rows_read, rows_accepted, rows_quarantined, rows_duplicate,
           recorded_at
    FROM ingestion_accounting;
CREATE OR REPLACE VIEW analyst.model_registry AS
    SELECT model_version, dt, objective, label, params_json, metrics_json, features_json,
           training_partitions_json, n_train_rows, n_valid_rows, created_at
    FROM model_registry;
CREATE OR REPLACE VIEW analyst.promotion_decisions AS
    SELECT dt, challenger, champion_before, champion_after, decision, reason,
           decided_at, experiment_id, evidence_json
    FROM promotion_decisions;
CREATE OR REPLACE VIEW analyst.experiments AS
    SELECT experiment_id, challenger, champion, traffic_share, created_dt, start_dt,
           max_days, planned_n, alpha, status, end_dt, reason, created_at
    FROM experiments;
CREATE OR REPLACE VIEW analyst.experiment_results AS
    SELECT experiment_id, dt, look, metric, kind, control_mean, treatment_mean, effect,
           ci_low, ci_high, p_value, p_adjusted, n_control, n_treatment, margin,
           outcome, note, computed_at
    FROM experiment_results;
CREATE OR REPLACE VIEW analyst.flywheel_health AS
    SELECT dt, requests, impressions, clicks, purchases, ctr, purchase_rate, champion,
           decision
    FROM flywheel_health;
CREATE OR REPLACE VIEW analyst.demand_forecasts AS
    SELECT dt, level, key, target_day, units_p10, units_p50, units_p90, units_mean,
           revenue_p50, model_version
    FROM demand_forecasts;
CREATE OR REPLACE VIEW analyst.forecast_backtest AS
    SELECT dt, level, model, model_version, origins, horizon_days, mase, wape, bias,
           coverage_80, coverage_80_discrete
    FROM forecast_backtest;
CREATE OR REPLACE VIEW analyst.replenishment_plan AS
    SELECT dt, item_id, lead_time_days, review_days, service_level, demand_lead_time,
           reorder_point, order_up_to, suggested_order_qty, model_version
    FROM replenishment_plan;
CREATE OR REPLACE VIEW analyst.forecast_models AS
    SELECT model_version, dt, params_json, lineage_json, n_train_rows, code_version,
           created_at
    FROM forecast_models;
REVOKE ALL ON SCHEMA analyst FROM PUBLIC;
GRANT USAGE ON SCHEMA analyst TO {analyst};
GRANT SELECT ON ALL TABLES IN SCHEMA analyst TO {analyst};
