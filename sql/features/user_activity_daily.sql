-- Per-user activity of each arrival partition in [:start_dt, :end_dt], by the UTC day it
-- happened (event_day). The only user-feature step that reads `events`: a daily run reads its
-- own partition (start = end), a backfill its whole range in one pass; every window (1, 7,
-- 28 days) is summed from these rows (user_features.sql).
INSERT INTO user_activity_daily (
    dt, event_day, user_id, impressions, views, clicks, carts, purchases,
    click_price_sum, click_price_n, purchase_price_sum, purchase_price_n, last_event_time
)
SELECT dt, CAST(event_time AS DATE), user_id,
       SUM(CASE WHEN event_type = 'impression' THEN 1 ELSE 0 END),
       SUM(CASE WHEN event_type = 'view' THEN 1 ELSE 0 END),
       SUM(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END),
       SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END),
       SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END),
       SUM(CASE WHEN event_type = 'click' THEN price END),
       SUM(CASE WHEN event_type = 'click' AND price IS NOT NULL THEN 1 ELSE 0 END),
       SUM(CASE WHEN event_type = 'purchase' THEN price END),
       SUM(CASE WHEN event_type = 'purchase' AND price IS NOT NULL THEN 1 ELSE 0 END),
       MAX(event_time)
FROM events
WHERE dt >= :start_dt AND dt <= :end_dt
GROUP BY dt, CAST(event_time AS DATE), user_id
