-- User x item history of snapshot :feature_dt for every pair active in its 28-day window: the
-- same aggregate features/feature_vector.sql computes for candidate pairs (rows that arrived by
-- feature_dt, event days feature_dt - 27 .. feature_dt), for all pairs, so serving can look
-- pairs up in memory. Keep the two in step: flywheel_tests/test_serving.py compares them.
SELECT a.user_id, a.item_id,
       SUM(a.impressions) AS ui_impressions_28d, SUM(a.clicks) AS ui_clicks_28d,
       SUM(a.purchases) AS ui_purchases_28d, SUM(a.views) AS ui_views_28d,
       SUM(a.carts) AS ui_carts_28d,
       EXTRACT(EPOCH FROM (CAST(CAST(:feature_dt AS DATE) AS TIMESTAMP) + INTERVAL '1 day'
                           - MAX(a.last_click_time))) / 86400.0 AS ui_days_since_last_click,
       EXTRACT(EPOCH FROM (CAST(CAST(:feature_dt AS DATE) AS TIMESTAMP) + INTERVAL '1 day'
                           - MAX(a.last_event_time))) / 86400.0 AS ui_days_since_last_event
FROM user_item_activity_daily a
WHERE a.dt <= CAST(:feature_dt AS DATE)
  AND a.event_day >= CAST(:feature_dt AS DATE) - 27
  AND a.event_day < CAST(:feature_dt AS DATE) + 1
GROUP BY a.user_id, a.item_id
