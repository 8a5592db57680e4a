-- Region x category response as of the end of day :dt: impressions, clicks and purchases of users
-- of each region on items of each category, smoothed towards the overall rates (Beta prior of
-- strength :prior_strength). Region and category come from the same day's user and item
-- snapshots, so there is one definition of "the catalog / the user as of :dt"; activity is summed
-- from user_item_activity_daily (same point-in-time window as user_features.sql).
INSERT INTO region_category_features (
    dt, region, category, rc_impressions_28d, rc_clicks_28d, rc_purchases_28d,
    rc_ctr_28d, rc_purchase_rate_28d
)
WITH agg AS (
    SELECT u.region, i.category,
           SUM(a.impressions) AS imps, SUM(a.clicks) AS clicks, SUM(a.purchases) AS purchases
    FROM user_item_activity_daily a
    JOIN user_features u ON u.user_id = a.user_id AND u.dt = :dt
    JOIN item_features i ON i.item_id = a.item_id AND i.dt = :dt
    WHERE a.dt <= :dt AND a.event_day >= :start_28d AND a.event_day < :end_day
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
