-- User x {{segment}} affinity as of the end of day :dt (user_category_features, columns uc_*;
-- user_brand_features, columns ub_*), summed from user_item_activity_daily with the item's
-- {{segment}} from the same day's item snapshot (same point-in-time window as user_features).
-- Items without one (a missing brand) are left out: the table's key may not be NULL.
-- @template segment p: category uc | brand ub
INSERT INTO user_{{segment}}_features (
    dt, user_id, {{segment}}, {{p}}_impressions_28d, {{p}}_clicks_28d, {{p}}_carts_28d,
    {{p}}_purchases_28d, {{p}}_ctr_28d, {{p}}_click_share_28d
)
WITH agg AS (
    SELECT a.user_id, i.{{segment}},
           SUM(a.impressions) AS imps, SUM(a.clicks) AS clicks,
           SUM(a.carts) AS carts, SUM(a.purchases) AS purchases
    FROM user_item_activity_daily a
    JOIN item_features i ON i.item_id = a.item_id AND i.dt = :dt
    WHERE a.dt <= :dt AND a.event_day >= :start_28d AND a.event_day < :end_day
      AND i.{{segment}} IS NOT NULL
    GROUP BY a.user_id, i.{{segment}}
),
tot AS (
    SELECT user_id, SUM(clicks) AS clicks FROM agg GROUP BY user_id
)
SELECT CAST(:dt AS DATE), a.user_id, a.{{segment}}, a.imps, a.clicks, a.carts, a.purchases,
       (a.clicks + 0.5) / (a.imps + 10.0),
       CASE WHEN t.clicks > 0 THEN CAST(a.clicks AS DOUBLE PRECISION) / t.clicks ELSE 0.0 END
FROM agg a JOIN tot t ON t.user_id = a.user_id
