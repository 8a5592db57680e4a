-- User x category affinity as of the end of day :dt, the category taken from the same day's
-- item snapshot.
INSERT INTO user_category_features
WITH agg AS (
    SELECT e.user_id, i.category,
           SUM(CASE WHEN e.event_type = 'impression' THEN 1 ELSE 0 END) AS imps,
           SUM(CASE WHEN e.event_type = 'click' THEN 1 ELSE 0 END) AS clicks,
           SUM(CASE WHEN e.event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS carts,
           SUM(CASE WHEN e.event_type = 'purchase' THEN 1 ELSE 0 END) AS purchases
    FROM events e
    JOIN item_features i ON i.item_id = e.item_id AND i.dt = :dt
    WHERE e.dt <= :dt AND e.event_time >= :start_28d AND e.event_time < :cutoff
    GROUP BY e.user_id, i.category
),
tot AS (
    SELECT user_id, SUM(clicks) AS clicks FROM agg GROUP BY user_id
)
SELECT CAST(:dt AS DATE), a.user_id, a.category, a.imps, a.clicks, a.carts, a.purchases,
       (a.clicks + 0.5) / (a.imps + 10.0),
       CASE WHEN t.clicks > 0 THEN CAST(a.clicks AS DOUBLE PRECISION) / t.clicks ELSE 0.0 END
FROM agg a JOIN tot t ON t.user_id = a.user_id
