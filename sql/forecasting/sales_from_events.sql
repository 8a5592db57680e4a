-- Units and revenue per item and day from accepted purchase events in [:from_day, :until):
-- the history of a shop that sends behaviour events but no order lines (one unit a purchase,
-- at the price the event carries; events without one are counted apart, as for orders).
SELECT item_id,
       CAST(event_time AS DATE) AS day,
       CAST(COUNT(*) AS DOUBLE PRECISION) AS units,
       CAST(COALESCE(SUM(price), 0) AS DOUBLE PRECISION) AS revenue,
       CAST(SUM(CASE WHEN price IS NULL THEN 1 ELSE 0 END) AS DOUBLE PRECISION) AS units_unpriced
FROM events
WHERE event_type = 'purchase' AND event_time >= :from_day AND event_time < :until
GROUP BY item_id, CAST(event_time AS DATE)
ORDER BY item_id, day
