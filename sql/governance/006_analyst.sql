-- Analysts read masked views in their own schema, never the tables: no raw payloads (the
-- quarantine's payload and the Kafka rows can hold personal data from before pseudonymisation),
-- no source paths, no pseudonymisation secrets (those never reach the warehouse at all). Views
-- run with their owner's rights, so the analyst needs no privilege on the tables underneath.
CREATE SCHEMA IF NOT EXISTS analyst;
CREATE OR REPLACE VIEW analyst.events AS
    SELECT dt, event_id, event_type, event_time, user_id, item_id, session_id, request_id,
           position, propensity, model_version, variant, price
    FROM events;
CREATE OR REPLACE VIEW analyst.items AS SELECT * FROM items;
CREATE OR REPLACE VIEW analyst.users AS SELECT * FROM users;
CREATE OR REPLACE VIEW analyst.quarantine AS
    SELECT dt, source, stage, reason, quarantined_at FROM quarantine;
CREATE OR REPLACE VIEW analyst.ingestion_accounting AS SELECT * FROM ingestion_accounting;
CREATE OR REPLACE VIEW analyst.model_registry AS
    SELECT model_version, dt, objective, label, params_json, metrics_json, features_json,
           training_partitions_json, n_train_rows, n_valid_rows, created_at
    FROM model_registry;
CREATE OR REPLACE VIEW analyst.promotion_decisions AS SELECT * FROM promotion_decisions;
CREATE OR REPLACE VIEW analyst.experiments AS SELECT * FROM experiments;
CREATE OR REPLACE VIEW analyst.experiment_results AS SELECT * FROM experiment_results;
CREATE OR REPLACE VIEW analyst.flywheel_health AS SELECT * FROM flywheel_health;
REVOKE ALL ON SCHEMA analyst FROM PUBLIC;
GRANT USAGE ON SCHEMA analyst TO {analyst};
GRANT SELECT ON ALL TABLES IN SCHEMA analyst TO {analyst};
