-- The catalog the real-time features count by: each item's category and brand in feature
-- snapshot :feature_dt (what sql/features/session_events.sql joins an event's item to).
SELECT item_id, category, brand FROM item_features WHERE dt = :feature_dt
