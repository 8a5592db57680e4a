-- Units and revenue per item and day sold, from order lines ordered in [:from_day, :until)
-- (docs/forecasting.md). A line delivered on two days (a daily file and an import) counts
-- once. Lines without a price are counted apart (units_unpriced): the catalog price values them.
WITH lines AS (
    SELECT DISTINCT order_id, user_id, item_id, quantity, price, order_time
    FROM orders
    WHERE order_time >= :from_day AND order_time < :until
)
SELECT item_id,
       CAST(order_time AS DATE) AS day,
       CAST(SUM(quantity) AS DOUBLE PRECISION) AS units,
       CAST(COALESCE(SUM(quantity * price), 0) AS DOUBLE PRECISION) AS revenue,
       CAST(SUM(CASE WHEN price IS NULL THEN quantity ELSE 0 END) AS DOUBLE PRECISION)
           AS units_unpriced
FROM lines
GROUP BY item_id, CAST(order_time AS DATE)
ORDER BY item_id, day
