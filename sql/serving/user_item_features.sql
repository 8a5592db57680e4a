-- User x item history of snapshot :feature_dt for every pair active in its 28-day window: the
-- same aggregate features/feature_vector.sql computes for candidate pairs (rows that arrived by
-- feature_dt, event days feature_dt - 27 .. feature_dt), for all pairs, so serving can look
-- pairs up in memory. Keep the two in step: flywheel_tests/test_serving.py compares them.
-- Sums cast to BIGINT: a SUM of BIGINT is HUGEINT in DuckDB and NUMERIC in PostgreSQL, which
-- reach pandas as Python Decimal objects (5x slower to export and to convert to floats).
SELECT a.user_id, a.item_id,
       CAST(SUM(a.impressions) AS BIGINT) AS ui_impressions_28d,
       CAST(SUM(a.clicks) AS BIGINT) AS ui_clicks_28d,
       CAST(SUM(a.purchases) AS BIGINT) AS ui_purchases_28d,
       CAST(SUM(a.views) AS BIGINT) AS ui_views_28d,
       CAST(SUM(a.carts) AS BIGINT) AS ui_carts_28d,
       EXTRACT(EPOCH FROM (CAST(CAST(:feature_dt AS DATE) AS TIMESTAMP) + INTERVAL '1 day'
                           - MAX(a.last_click_time))) / 86400.0 AS ui_days_since_last_click,
       EXTRACT(EPOCH FROM (CAST(CAST(:feature_dt AS DATE) AS TIMESTAMP) + INTERVAL '1 day'
                           - MAX(a.last_event_time))) / 86400.0 AS ui_days_since_last_event
FROM user_item_activity_daily a
WHERE a.dt <= CAST(:feature_dt AS DATE)
  AND a.event_day >= CAST(:feature_dt AS DATE) - 27
  AND a.event_day < CAST(:feature_dt AS DATE) + 1
GROUP BY a.user_id, a.item_id
