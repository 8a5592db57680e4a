-- User x brand affinity as of the end of day :dt, summed from user_item_activity_daily with
-- the brand from the same day's item snapshot (same point-in-time window as user_features).
INSERT INTO user_brand_features (
    dt, user_id, brand, ub_impressions_28d, ub_clicks_28d, ub_carts_28d, ub_purchases_28d,
    ub_ctr_28d, ub_click_share_28d
)
WITH agg AS (
    SELECT a.user_id, i.brand,
           SUM(a.impressions) AS imps, SUM(a.clicks) AS clicks,
           SUM(a.carts) AS carts, SUM(a.purchases) AS purchases
    FROM user_item_activity_daily a
    JOIN item_features i ON i.item_id = a.item_id AND i.dt = :dt
    WHERE a.dt <= :dt AND a.event_day >= :start_28d AND a.event_day < :end_day
      AND i.brand IS NOT NULL
    GROUP BY a.user_id, i.brand
),
tot AS (
    SELECT user_id, SUM(clicks) AS clicks FROM agg GROUP BY user_id
)
SELECT CAST(:dt AS DATE), a.user_id, a.brand, a.imps, a.clicks, a.carts, a.purchases,
       (a.clicks + 0.5) / (a.imps + 10.0),
       CASE WHEN t.clicks > 0 THEN CAST(a.clicks AS DOUBLE PRECISION) / t.clicks ELSE 0.0 END
FROM agg a JOIN tot t ON t.user_id = a.user_id
