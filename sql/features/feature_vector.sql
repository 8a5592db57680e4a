-- The model's feature vector for (user, item) pairs in a relation named `candidates`
-- (request_id, user_id, item_id, position, event_time, feature_dt). Each row joins the feature
-- snapshot of its own feature_dt. Training (candidates = logged impressions of day D with
-- feature_dt = D - 1) and serving (candidates = the request's items with the latest snapshot)
-- both use this one query, so the two cannot drift apart.
--
-- This file is the query's FROM clause: `SELECT c.*, <features>` comes before it, generated
-- from the one declaration of the vector, flywheel_assets/features/vector.py (FEATURES), which
-- names each feature's source by the aliases below (uf, i, uc, ub, ui, rc, rb) and holds the
-- computed ones' expressions (ctx_hour, ctx_dow, ui_price_ratio). Run it as
-- features.vector.vector_sql().
--
-- User x item history is computed here, for the candidate pairs only, from
-- user_item_activity_daily with the snapshot's point-in-time window (rows that arrived by
-- feature_dt, event days feature_dt - 27 .. feature_dt): a daily table of every pair active in
-- 28 days would be nearly as large as the events themselves, every day (decision 39).
FROM candidates c
LEFT JOIN item_features i ON i.item_id = c.item_id AND i.dt = c.feature_dt
LEFT JOIN user_features uf ON uf.user_id = c.user_id AND uf.dt = c.feature_dt
LEFT JOIN user_category_features uc
       ON uc.user_id = c.user_id AND uc.category = i.category AND uc.dt = c.feature_dt
LEFT JOIN user_brand_features ub
       ON ub.user_id = c.user_id AND ub.brand = i.brand AND ub.dt = c.feature_dt
LEFT JOIN (
    SELECT p.user_id, p.item_id, p.feature_dt,
           CAST(SUM(a.impressions) AS BIGINT) AS ui_impressions_28d,
           CAST(SUM(a.clicks) AS BIGINT) AS ui_clicks_28d,
           CAST(SUM(a.purchases) AS BIGINT) AS ui_purchases_28d,
           CAST(SUM(a.views) AS BIGINT) AS ui_views_28d,
           CAST(SUM(a.carts) AS BIGINT) AS ui_carts_28d,
           EXTRACT(EPOCH FROM (CAST(p.feature_dt AS TIMESTAMP) + INTERVAL '1 day'
                               - MAX(a.last_click_time))) / 86400.0 AS ui_days_since_last_click,
           EXTRACT(EPOCH FROM (CAST(p.feature_dt AS TIMESTAMP) + INTERVAL '1 day'
                               - MAX(a.last_event_time))) / 86400.0 AS ui_days_since_last_event
    FROM (SELECT DISTINCT user_id, item_id, feature_dt FROM candidates) p
    JOIN user_item_activity_daily a
      ON a.user_id = p.user_id AND a.item_id = p.item_id
     AND a.dt <= p.feature_dt AND a.event_day >= p.feature_dt - 27
     AND a.event_day < p.feature_dt + 1
    GROUP BY p.user_id, p.item_id, p.feature_dt
) ui ON ui.user_id = c.user_id AND ui.item_id = c.item_id AND ui.feature_dt = c.feature_dt
-- Region x segment rows match through the user's snapshot row (uf.dt = c.feature_dt, and no
-- uf row means no region): with all three keys on a side PostgreSQL looks them up, where
-- c.feature_dt made it merge on dt alone and filter 37 million rows at 14 days (decision 91).
LEFT JOIN region_category_features rc
       ON rc.region = uf.region AND rc.category = i.category AND rc.dt = uf.dt
LEFT JOIN region_brand_features rb
       ON rb.region = uf.region AND rb.brand = i.brand AND rb.dt = uf.dt
