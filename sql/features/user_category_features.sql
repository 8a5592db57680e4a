-- User x category affinity as of the end of day :dt, the category taken from the catalog as
-- delivered by then.
INSERT INTO user_category_features
WITH cat AS (
    SELECT item_id, category,
           ROW_NUMBER() OVER (PARTITION BY item_id ORDER BY dt DESC) AS rn
    FROM items
    WHERE dt <= :dt
),
w AS (
    SELECT e.user_id, c.category, e.event_type
    FROM events e
    JOIN cat c ON c.item_id = e.item_id AND c.rn = 1
    WHERE e.dt <= :dt AND e.event_time >= :start_28d AND e.event_time < :cutoff
),
agg AS (
    SELECT user_id, category,
           SUM(CASE WHEN event_type = 'impression' THEN 1 ELSE 0 END) AS imps,
           SUM(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END) AS clicks,
           SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS carts,
           SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchases
    FROM w
    GROUP BY user_id, category
),
tot AS (
    SELECT user_id, SUM(clicks) AS clicks FROM agg GROUP BY user_id
)
SELECT CAST(:dt AS DATE), a.user_id, a.category, a.imps, a.clicks, a.carts, a.purchases,
       (a.clicks + 0.5) / (a.imps + 10.0),
       CASE WHEN t.clicks > 0 THEN CAST(a.clicks AS DOUBLE PRECISION) / t.clicks ELSE 0.0 END
FROM agg a JOIN tot t ON t.user_id = a.user_id
