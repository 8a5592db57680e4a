-- Per user x item activity of each arrival partition in [:start_dt, :end_dt], by the UTC day it
-- happened. The
-- user x item, user x category, user x brand and region snapshots all sum these rows.
INSERT INTO user_item_activity_daily (
    dt, event_day, user_id, item_id, impressions, views, clicks, carts, purchases,
    last_click_time, last_event_time
)
SELECT dt, CAST(event_time AS DATE), user_id, item_id,
       SUM(CASE WHEN event_type = 'impression' THEN 1 ELSE 0 END),
       SUM(CASE WHEN event_type = 'view' THEN 1 ELSE 0 END),
       SUM(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END),
       SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END),
       SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END),
       MAX(CASE WHEN event_type = 'click' THEN event_time END),
       MAX(event_time)
FROM events
WHERE dt >= :start_dt AND dt <= :end_dt
GROUP BY dt, CAST(event_time AS DATE), user_id, item_id
