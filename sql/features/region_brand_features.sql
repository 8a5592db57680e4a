-- Region x brand response as of the end of day :dt: impressions, clicks and purchases of users
-- of each region on items of each brand, smoothed towards the overall rates (Beta prior of
-- strength :prior_strength). Region and brand come from the same day's user and item
-- snapshots, so there is one definition of "the catalog / the user as of :dt".
INSERT INTO region_brand_features
WITH agg AS (
    SELECT u.region, i.brand,
           SUM(CASE WHEN e.event_type = 'impression' THEN 1 ELSE 0 END) AS imps,
           SUM(CASE WHEN e.event_type = 'click' THEN 1 ELSE 0 END) AS clicks,
           SUM(CASE WHEN e.event_type = 'purchase' THEN 1 ELSE 0 END) AS purchases
    FROM events e
    JOIN user_features u ON u.user_id = e.user_id AND u.dt = :dt
    JOIN item_features i ON i.item_id = e.item_id AND i.dt = :dt
    WHERE e.dt <= :dt AND e.event_time >= :start_28d AND e.event_time < :cutoff
      AND u.region IS NOT NULL AND i.brand IS NOT NULL
    GROUP BY u.region, i.brand
),
prior AS (
    SELECT CAST(COALESCE(SUM(clicks), 0) + 1 AS DOUBLE PRECISION) / (COALESCE(SUM(imps), 0) + 20) AS ctr,
           CAST(COALESCE(SUM(purchases), 0) + 1 AS DOUBLE PRECISION) / (COALESCE(SUM(imps), 0) + 20) AS buy
    FROM agg
)
SELECT CAST(:dt AS DATE), a.region, a.brand, a.imps, a.clicks, a.purchases,
       (a.clicks + :prior_strength * prior.ctr) / (a.imps + :prior_strength),
       (a.purchases + :prior_strength * prior.buy) / (a.imps + :prior_strength)
FROM agg a CROSS JOIN prior
