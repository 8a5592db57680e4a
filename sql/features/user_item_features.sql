-- User x item history as of the end of day :dt, summed from user_item_activity_daily (same
-- point-in-time window as user_features.sql).
INSERT INTO user_item_features (
    dt, user_id, item_id, ui_impressions_28d, ui_clicks_28d, ui_purchases_28d,
    ui_days_since_last_click, ui_views_28d, ui_carts_28d, ui_days_since_last_event
)
SELECT CAST(:dt AS DATE), user_id, item_id,
       SUM(impressions), SUM(clicks), SUM(purchases),
       EXTRACT(EPOCH FROM (CAST(:cutoff AS TIMESTAMP) - MAX(last_click_time))) / 86400.0,
       SUM(views), SUM(carts),
       EXTRACT(EPOCH FROM (CAST(:cutoff AS TIMESTAMP) - MAX(last_event_time))) / 86400.0
FROM user_item_activity_daily
WHERE dt <= :dt AND event_day >= :start_28d AND event_day < :end_day
GROUP BY user_id, item_id
