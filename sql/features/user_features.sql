-- User features as of the end of day :dt (events before :cutoff that arrived by :dt), for every
-- user known by then: delivered in `users` or seen in events. CTR and conversion are smoothed
-- towards the population rate (Beta prior of strength :prior_strength) so a user with one
-- impression and one click does not get CTR 1.0.
INSERT INTO user_features
WITH w AS (
    SELECT user_id, event_type, event_time, price
    FROM events
    WHERE dt <= :dt AND event_time >= :start_28d AND event_time < :cutoff
),
per_user AS (
    SELECT user_id,
           SUM(CASE WHEN event_type = 'impression' THEN 1 ELSE 0 END) AS imps,
           SUM(CASE WHEN event_type = 'view' THEN 1 ELSE 0 END) AS views,
           SUM(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END) AS clicks,
           SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS carts,
           SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchases,
           SUM(CASE WHEN event_type = 'click' AND event_time >= :start_7d THEN 1 ELSE 0 END) AS clicks_7d,
           SUM(CASE WHEN event_type = 'purchase' AND event_time >= :start_7d THEN 1 ELSE 0 END) AS purchases_7d,
           AVG(CASE WHEN event_type = 'click' THEN price END) AS avg_click_price,
           MAX(event_time) AS last_event
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
       EXTRACT(EPOCH FROM (CAST(:cutoff AS TIMESTAMP) - p.last_event)) / 86400.0
FROM known k
LEFT JOIN latest_user lu ON lu.user_id = k.user_id AND lu.rn = 1
LEFT JOIN per_user p ON p.user_id = k.user_id
CROSS JOIN prior
