-- PostgreSQL only: the snapshots read the daily aggregates by window of event days.
CREATE INDEX IF NOT EXISTS user_activity_daily_key ON user_activity_daily (event_day, dt);
CREATE INDEX IF NOT EXISTS user_activity_daily_dt ON user_activity_daily (dt);
CREATE INDEX IF NOT EXISTS item_activity_daily_key ON item_activity_daily (event_day, dt);
CREATE INDEX IF NOT EXISTS item_activity_daily_dt ON item_activity_daily (dt);
CREATE INDEX IF NOT EXISTS user_item_activity_daily_key ON user_item_activity_daily (event_day, dt);
CREATE INDEX IF NOT EXISTS user_item_activity_daily_dt ON user_item_activity_daily (dt);
CREATE INDEX IF NOT EXISTS user_brand_features_key ON user_brand_features (dt, user_id, brand);
-- The feature vector sums a candidate pair's rows on demand (feature_vector.sql).
CREATE INDEX IF NOT EXISTS user_item_activity_daily_pair
    ON user_item_activity_daily (user_id, item_id, event_day);
