-- User x item history as of the end of day :dt.
INSERT INTO user_item_features
SELECT CAST(:dt AS DATE), user_id, item_id,
       SUM(CASE WHEN event_type = 'impression' THEN 1 ELSE 0 END),
       SUM(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END),
       SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END),
       EXTRACT(EPOCH FROM (CAST(:cutoff AS TIMESTAMP)
               - MAX(CASE WHEN event_type = 'click' THEN event_time END))) / 86400.0
FROM events
WHERE dt <= :dt AND event_time >= :start_28d AND event_time < :cutoff
GROUP BY user_id, item_id
