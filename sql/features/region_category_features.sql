-- Region x category response as of the end of day :dt: impressions, clicks and purchases of users
-- of each region on items of each category, smoothed towards the overall rates (Beta prior of
-- strength :prior_strength). Region and category as known at the end of the day.
INSERT INTO region_category_features
WITH usr AS (
    SELECT user_id, region, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY dt DESC) AS rn
    FROM users
    WHERE dt <= :dt
),
itm AS (
    SELECT item_id, category, ROW_NUMBER() OVER (PARTITION BY item_id ORDER BY dt DESC) AS rn
    FROM items
    WHERE dt <= :dt
),
agg AS (
    SELECT u.region, i.category,
           SUM(CASE WHEN e.event_type = 'impression' THEN 1 ELSE 0 END) AS imps,
           SUM(CASE WHEN e.event_type = 'click' THEN 1 ELSE 0 END) AS clicks,
           SUM(CASE WHEN e.event_type = 'purchase' THEN 1 ELSE 0 END) AS purchases
    FROM events e
    JOIN usr u ON u.user_id = e.user_id AND u.rn = 1
    JOIN itm i ON i.item_id = e.item_id AND i.rn = 1
    WHERE e.dt <= :dt AND e.event_time >= :start_28d AND e.event_time < :cutoff
      AND u.region IS NOT NULL AND i.category IS NOT NULL
    GROUP BY u.region, i.category
),
prior AS (
    SELECT CAST(COALESCE(SUM(clicks), 0) + 1 AS DOUBLE PRECISION) / (COALESCE(SUM(imps), 0) + 20) AS ctr,
           CAST(COALESCE(SUM(purchases), 0) + 1 AS DOUBLE PRECISION) / (COALESCE(SUM(imps), 0) + 20) AS buy
    FROM agg
)
SELECT CAST(:dt AS DATE), a.region, a.category, a.imps, a.clicks, a.purchases,
       (a.clicks + :prior_strength * prior.ctr) / (a.imps + :prior_strength),
       (a.purchases + :prior_strength * prior.buy) / (a.imps + :prior_strength)
FROM agg a CROSS JOIN prior
