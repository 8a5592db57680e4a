-- Region x {{segment}} response as of the end of day :dt (region_category_features, columns
-- rc_*; region_brand_features, columns rb_*): impressions, clicks and purchases of users of
-- each region on items of each {{segment}}, smoothed towards the overall rates (Beta prior of
-- strength :prior_strength). Region and {{segment}} come from the same day's user and item
-- snapshots, so there is one definition of "the catalog / the user as of :dt"; activity is
-- summed from user_item_activity_daily (same point-in-time window as user_features.sql).
-- @template segment p: category rc | brand rb
INSERT INTO region_{{segment}}_features (
    dt, region, {{segment}}, {{p}}_impressions_28d, {{p}}_clicks_28d, {{p}}_purchases_28d,
    {{p}}_ctr_28d, {{p}}_purchase_rate_28d
)
WITH agg AS (
    SELECT u.region, i.{{segment}},
           SUM(a.impressions) AS imps, SUM(a.clicks) AS clicks, SUM(a.purchases) AS purchases
    FROM user_item_activity_daily a
    JOIN user_features u ON u.user_id = a.user_id AND u.dt = :dt
    JOIN item_features i ON i.item_id = a.item_id AND i.dt = :dt
    WHERE a.dt <= :dt AND a.event_day >= :start_28d AND a.event_day < :end_day
      AND u.region IS NOT NULL AND i.{{segment}} IS NOT NULL
    GROUP BY u.region, i.{{segment}}
),
prior AS (
    SELECT CAST(COALESCE(SUM(clicks), 0) + 1 AS DOUBLE PRECISION) / (COALESCE(SUM(imps), 0) + 20) AS ctr,
           CAST(COALESCE(SUM(purchases), 0) + 1 AS DOUBLE PRECISION) / (COALESCE(SUM(imps), 0) + 20) AS buy
    FROM agg
)
SELECT CAST(:dt AS DATE), a.region, a.{{segment}}, a.imps, a.clicks, a.purchases,
       (a.clicks + :prior_strength * prior.ctr) / (a.imps + :prior_strength),
       (a.purchases + :prior_strength * prior.buy) / (a.imps + :prior_strength)
FROM agg a CROSS JOIN prior
