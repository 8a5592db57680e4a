-- Each user's activity per arrival partition (dt) and UTC day, from accepted events with
-- dt in [:from_dt, :to_dt]: pages viewed, clicks, cart adds, sessions, and purchases with
-- their revenue (a purchase is its quantity's units at price each; a purchase is counted
-- once however many units). The purchase-likelihood snapshots window these rows in Python,
-- keeping dt: a snapshot of day D reads only rows that had arrived by D. Counts are cast to
-- BIGINT: DuckDB sums to a 128-bit decimal, which pandas would hold as Python objects.
SELECT user_id,
       dt,
       CAST(event_time AS DATE) AS day,
       CAST(SUM(CASE WHEN event_type = 'view' THEN 1 ELSE 0 END) AS BIGINT) AS views,
       CAST(SUM(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END) AS BIGINT) AS clicks,
       CAST(SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS BIGINT) AS carts,
       CAST(COUNT(DISTINCT session_id) AS BIGINT) AS sessions,
       CAST(SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS BIGINT) AS purchases,
       CAST(COALESCE(SUM(CASE WHEN event_type = 'purchase'
                              THEN price * COALESCE(quantity, 1) END), 0)
            AS DOUBLE PRECISION) AS revenue
FROM events
WHERE dt >= :from_dt AND dt <= :to_dt AND event_type <> 'impression'
GROUP BY user_id, dt, CAST(event_time AS DATE)
ORDER BY user_id, dt, day
