-- User features as of the end of day :dt, for every user known by then (delivered in `users`
-- or active in the window), summed from user_activity_daily.
--
-- Point in time: a snapshot sees activity that happened strictly before :cutoff (the end of
-- :dt, event_day < :end_day) AND had arrived by then (partition dt <= :dt). Serving on day
-- :dt + 1 and training on that day's impressions read this snapshot, so neither sees an event
-- the other could not have seen. CTR and conversion are smoothed towards the population rate
-- (a Beta prior of strength :prior_strength): one impression and one click is not CTR 1.0.
INSERT INTO user_features (
    dt, user_id, region, device, u_days_since_signup,
    u_impressions_28d, u_views_28d, u_clicks_28d, u_carts_28d, u_purchases_28d,
    u_clicks_7d, u_purchases_7d, u_ctr_28d, u_conversion_28d, u_avg_click_price_28d,
    u_days_since_last_event,
    u_impressions_1d, u_views_1d, u_clicks_1d, u_carts_1d, u_purchases_1d,
    u_impressions_7d, u_views_7d, u_carts_7d, u_active_days_28d, u_avg_purchase_price_28d
)
WITH w AS (
    SELECT *
    FROM user_activity_daily
    WHERE dt <= :dt AND event_day >= :start_28d AND event_day < :end_day
),
per_user AS (
    SELECT user_id,
           SUM(impressions) AS imps, SUM(views) AS views, SUM(clicks) AS clicks,
           SUM(carts) AS carts, SUM(purchases) AS purchases,
           SUM(CASE WHEN event_day >= :start_7d THEN impressions ELSE 0 END) AS imps_7d,
           SUM(CASE WHEN event_day >= :start_7d THEN views ELSE 0 END) AS views_7d,
           SUM(CASE WHEN event_day >= :start_7d THEN clicks ELSE 0 END) AS clicks_7d,
           SUM(CASE WHEN event_day >= :start_7d THEN carts ELSE 0 END) AS carts_7d,
           SUM(CASE WHEN event_day >= :start_7d THEN purchases ELSE 0 END) AS purchases_7d,
           SUM(CASE WHEN event_day >= :start_1d THEN impressions ELSE 0 END) AS imps_1d,
           SUM(CASE WHEN event_day >= :start_1d THEN views ELSE 0 END) AS views_1d,
           SUM(CASE WHEN event_day >= :start_1d THEN clicks ELSE 0 END) AS clicks_1d,
           SUM(CASE WHEN event_day >= :start_1d THEN carts ELSE 0 END) AS carts_1d,
           SUM(CASE WHEN event_day >= :start_1d THEN purchases ELSE 0 END) AS purchases_1d,
           COUNT(DISTINCT event_day) AS active_days,
           SUM(click_price_sum) / NULLIF(SUM(click_price_n), 0) AS avg_click_price,
           SUM(purchase_price_sum) / NULLIF(SUM(purchase_price_n), 0) AS avg_purchase_price,
           MAX(last_event_time) AS last_event
    FROM w
    GROUP BY user_id
),
latest_user AS (
    SELECT user_id, region, device, signup_date,
           ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY dt DESC) AS rn
    FROM users
    WHERE dt <= :dt
),
known AS (
    SELECT user_id FROM latest_user WHERE rn = 1
    UNION
    SELECT user_id FROM per_user
),
prior AS (
    SELECT CAST(COALESCE(SUM(clicks), 0) + 1 AS DOUBLE PRECISION) / (COALESCE(SUM(imps), 0) + 20) AS ctr,
           CAST(COALESCE(SUM(purchases), 0) + 1 AS DOUBLE PRECISION) / (COALESCE(SUM(clicks), 0) + 20) AS conv
    FROM per_user
)
SELECT CAST(:dt AS DATE), k.user_id, lu.region, lu.device,
       EXTRACT(EPOCH FROM (CAST(:cutoff AS TIMESTAMP) - CAST(lu.signup_date AS TIMESTAMP))) / 86400.0,
       COALESCE(p.imps, 0), COALESCE(p.views, 0), COALESCE(p.clicks, 0), COALESCE(p.carts, 0),
       COALESCE(p.purchases, 0), COALESCE(p.clicks_7d, 0), COALESCE(p.purchases_7d, 0),
       (COALESCE(p.clicks, 0) + :prior_strength * prior.ctr) / (COALESCE(p.imps, 0) + :prior_strength),
       (COALESCE(p.purchases, 0) + :prior_strength * prior.conv) / (COALESCE(p.clicks, 0) + :prior_strength),
       p.avg_click_price,
       EXTRACT(EPOCH FROM (CAST(:cutoff AS TIMESTAMP) - p.last_event)) / 86400.0,
       COALESCE(p.imps_1d, 0), COALESCE(p.views_1d, 0), COALESCE(p.clicks_1d, 0),
       COALESCE(p.carts_1d, 0), COALESCE(p.purchases_1d, 0),
       COALESCE(p.imps_7d, 0), COALESCE(p.views_7d, 0), COALESCE(p.carts_7d, 0),
       COALESCE(p.active_days, 0), p.avg_purchase_price
FROM known k
LEFT JOIN latest_user lu ON lu.user_id = k.user_id AND lu.rn = 1
LEFT JOIN per_user p ON p.user_id = k.user_id
CROSS JOIN prior
