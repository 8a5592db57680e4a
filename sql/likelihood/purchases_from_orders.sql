-- Each user's purchases per arrival partition (dt) and UTC day from order lines with dt in
-- [:from_dt, :to_dt]: distinct orders, and their revenue (quantity x price; lines without a
-- price add nothing). For a shop whose purchases are its order lines.
SELECT user_id,
       dt,
       CAST(order_time AS DATE) AS day,
       CAST(COUNT(DISTINCT order_id) AS BIGINT) AS purchases,
       CAST(COALESCE(SUM(quantity * price), 0) AS DOUBLE PRECISION) AS revenue
FROM orders
WHERE dt >= :from_dt AND dt <= :to_dt
GROUP BY user_id, dt, CAST(order_time AS DATE)
ORDER BY user_id, dt, day
