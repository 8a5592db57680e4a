-- Per-user activity that arrived in partition :dt, by the UTC day it happened (event_day).
-- The only user-feature step that reads `events`, and it reads one partition: every window
-- (1, 7, 28 days) is summed from these rows (user_features.sql).
INSERT INTO user_activity_daily (
    dt, event_day, user_id, impressions, views, clicks, carts, purchases,
    click_price_sum, click_price_n, purchase_price_sum, purchase_price_n, last_event_time
)
SELECT CAST(:dt AS DATE), CAST(event_time AS DATE), user_id,
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
WHERE dt = :dt
GROUP BY CAST(event_time AS DATE), user_id
