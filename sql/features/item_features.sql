-- Item features as of the end of day :dt: the catalog as delivered by then (latest row per
-- item), price change over 7 days, and smoothed engagement over 28 days.
INSERT INTO item_features
WITH latest AS (
    SELECT item_id, category, brand, price, valid_from,
           ROW_NUMBER() OVER (PARTITION BY item_id ORDER BY dt DESC) AS rn
    FROM items
    WHERE dt <= :dt
),
first_seen AS (
    SELECT item_id, MIN(valid_from) AS first_valid FROM items WHERE dt <= :dt GROUP BY item_id
),
week_ago AS (
    SELECT item_id, price,
           ROW_NUMBER() OVER (PARTITION BY item_id ORDER BY dt DESC) AS rn
    FROM items
    WHERE dt <= :week_ago
),
eng AS (
    SELECT item_id,
           SUM(CASE WHEN event_type = 'impression' THEN 1 ELSE 0 END) AS imps,
           SUM(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END) AS clicks,
           SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchases
    FROM events
    WHERE dt <= :dt AND event_time >= :start_28d AND event_time < :cutoff
    GROUP BY item_id
),
prior AS (
    SELECT CAST(COALESCE(SUM(clicks), 0) + 1 AS DOUBLE PRECISION) / (COALESCE(SUM(imps), 0) + 20) AS ctr,
           CAST(COALESCE(SUM(purchases), 0) + 1 AS DOUBLE PRECISION) / (COALESCE(SUM(clicks), 0) + 20) AS conv
    FROM eng
)
SELECT CAST(:dt AS DATE), l.item_id, l.category, l.brand, l.price,
       CASE WHEN w.price > 0 THEN l.price / w.price - 1.0 END,
       EXTRACT(EPOCH FROM (CAST(:cutoff AS TIMESTAMP) - f.first_valid)) / 86400.0,
       COALESCE(e.imps, 0), COALESCE(e.clicks, 0), COALESCE(e.purchases, 0),
       (COALESCE(e.clicks, 0) + :prior_strength * prior.ctr) / (COALESCE(e.imps, 0) + :prior_strength),
       (COALESCE(e.purchases, 0) + :prior_strength * prior.conv) / (COALESCE(e.clicks, 0) + :prior_strength)
FROM latest l
JOIN first_seen f ON f.item_id = l.item_id
LEFT JOIN week_ago w ON w.item_id = l.item_id AND w.rn = 1
LEFT JOIN eng e ON e.item_id = l.item_id
CROSS JOIN prior
WHERE l.rn = 1
