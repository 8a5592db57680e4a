-- PostgreSQL only: b-tree indexes for the partition deletes and the point-in-time joins.
-- (DuckDB scans columnar segments with min/max pruning and needs none; its ART indexes would
-- only slow the bulk loads.)
CREATE INDEX IF NOT EXISTS raw_events_dt ON raw_events (dt);
CREATE INDEX IF NOT EXISTS events_dt ON events (dt);
CREATE INDEX IF NOT EXISTS events_event_id ON events (event_id);
CREATE INDEX IF NOT EXISTS events_request_item ON events (request_id, item_id);
CREATE INDEX IF NOT EXISTS quarantine_dt ON quarantine (dt, source, stage);
CREATE INDEX IF NOT EXISTS items_item_dt ON items (item_id, dt);
CREATE INDEX IF NOT EXISTS users_user_dt ON users (user_id, dt);
CREATE INDEX IF NOT EXISTS user_features_key ON user_features (dt, user_id);
CREATE INDEX IF NOT EXISTS item_features_key ON item_features (dt, item_id);
CREATE INDEX IF NOT EXISTS user_category_features_key ON user_category_features (dt, user_id, category);
CREATE INDEX IF NOT EXISTS region_category_features_key ON region_category_features (dt, region, category);
CREATE INDEX IF NOT EXISTS region_brand_features_key ON region_brand_features (dt, region, brand);
CREATE INDEX IF NOT EXISTS training_examples_dt ON training_examples (dt);
CREATE INDEX IF NOT EXISTS model_registry_version ON model_registry (model_version);
