-- Per-item activity of each arrival partition in [:start_dt, :end_dt], by the UTC day it
-- happened (event_day).
INSERT INTO item_activity_daily (
    dt, event_day, item_id, impressions, views, clicks, carts, purchases
)
SELECT dt, CAST(event_time AS DATE), item_id,
       SUM(CASE WHEN event_type = 'impression' THEN 1 ELSE 0 END),
       SUM(CASE WHEN event_type = 'view' THEN 1 ELSE 0 END),
       SUM(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END),
       SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END),
       SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END)
FROM events
WHERE dt >= :start_dt AND dt <= :end_dt
GROUP BY dt, CAST(event_time AS DATE), item_id
