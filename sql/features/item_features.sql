-- Item features as of the end of day :dt: the catalog as delivered by then (latest row per
-- item), price change over 7 days, age in the catalog, and popularity and smoothed engagement
-- summed from item_activity_daily (same point-in-time window as user_features.sql).
INSERT INTO item_features (
    dt, item_id, category, brand, i_price, i_price_change_7d, i_days_in_catalog,
    i_impressions_28d, i_clicks_28d, i_purchases_28d, i_ctr_28d, i_conversion_28d,
    i_impressions_7d, i_clicks_7d, i_purchases_7d, i_carts_28d
)
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
           SUM(impressions) AS imps, SUM(clicks) AS clicks, SUM(purchases) AS purchases,
           SUM(carts) AS carts,
           SUM(CASE WHEN event_day >= :start_7d THEN impressions ELSE 0 END) AS imps_7d,
           SUM(CASE WHEN event_day >= :start_7d THEN clicks ELSE 0 END) AS clicks_7d,
           SUM(CASE WHEN event_day >= :start_7d THEN purchases ELSE 0 END) AS purchases_7d
    FROM item_activity_daily
    WHERE dt <= :dt AND event_day >= :start_28d AND event_day < :end_day
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
       (COALESCE(e.purchases, 0) + :prior_strength * prior.conv) / (COALESCE(e.clicks, 0) + :prior_strength),
       COALESCE(e.imps_7d, 0), COALESCE(e.clicks_7d, 0), COALESCE(e.purchases_7d, 0),
       COALESCE(e.carts, 0)
FROM latest l
JOIN first_seen f ON f.item_id = l.item_id
LEFT JOIN week_ago w ON w.item_id = l.item_id AND w.rn = 1
LEFT JOIN eng e ON e.item_id = l.item_id
CROSS JOIN prior
WHERE l.rn = 1
