-- Units and revenue per item and day from accepted purchase events in [:from_day, :until):
-- the history of a shop that sends behaviour events but no order lines. A purchase is its
-- `quantity` units, one when it carries none; `price` is per unit; units without a price are
-- counted apart, as for orders.
SELECT item_id,
       CAST(event_time AS DATE) AS day,
       CAST(SUM(COALESCE(quantity, 1)) AS DOUBLE PRECISION) AS units,
       CAST(COALESCE(SUM(price * COALESCE(quantity, 1)), 0) AS DOUBLE PRECISION) AS revenue,
       CAST(SUM(CASE WHEN price IS NULL THEN COALESCE(quantity, 1) ELSE 0 END)
            AS DOUBLE PRECISION) AS units_unpriced
FROM events
WHERE event_type = 'purchase' AND event_time >= :from_day AND event_time < :until
GROUP BY item_id, CAST(event_time AS DATE)
ORDER BY item_id, day
