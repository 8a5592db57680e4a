-- Per-user outcomes of an experiment from its first serving day to :end_dt, by the arm the
-- events were served under (variant and model version both as the experiment defined them),
-- with the CUPED covariate: the user's purchase rate in the pre-period (from pre_start_dt).
WITH shown AS (
    -- the arm each request was served under, for feedback that does not carry it (a service
    -- replica that no longer knew the request logs feedback with the user only); only where
    -- the user's request had one arm and one model (a reused request id stays unattributed)
    SELECT request_id, user_id, MIN(variant) AS variant, MIN(model_version) AS model_version
    FROM events
    WHERE dt >= :start_dt AND dt <= :end_dt AND event_type = 'impression'
    GROUP BY request_id, user_id
    HAVING COUNT(DISTINCT variant) = 1 AND COUNT(DISTINCT model_version) = 1
),
served AS (
    SELECT e.user_id, COALESCE(e.variant, s.variant) AS variant, e.event_type, e.request_id,
           e.price
    FROM events e
    LEFT JOIN shown s
           ON s.request_id = e.request_id AND s.user_id = e.user_id AND e.variant IS NULL
    WHERE e.dt >= :start_dt AND e.dt <= :end_dt
      AND ((COALESCE(e.variant, s.variant) = 'challenger'
            AND COALESCE(e.model_version, s.model_version) = :challenger)
        OR (COALESCE(e.variant, s.variant) = 'champion'
            AND COALESCE(e.model_version, s.model_version) = :champion))
),
per_user AS (
    SELECT user_id,
           MIN(variant) AS variant,
           COUNT(DISTINCT variant) AS n_variants,
           COUNT(DISTINCT CASE WHEN event_type = 'impression' THEN request_id END) AS requests,
           SUM(CASE WHEN event_type = 'impression' THEN 1 ELSE 0 END) AS impressions,
           SUM(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END) AS clicks,
           SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchases,
           SUM(CASE WHEN event_type = 'purchase' THEN COALESCE(price, 0) ELSE 0 END) AS revenue
    FROM served
    GROUP BY user_id
),
pre AS (
    SELECT user_id,
           COUNT(DISTINCT CASE WHEN event_type = 'impression' THEN request_id END) AS requests,
           SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchases
    FROM events
    WHERE dt >= :pre_start_dt AND dt < :start_dt
    GROUP BY user_id
)
SELECT p.user_id, p.variant, p.n_variants, p.requests, p.impressions, p.clicks, p.purchases,
       p.revenue,
       COALESCE(pre.purchases, 0) AS pre_purchases,
       COALESCE(pre.requests, 0) AS pre_requests
FROM per_user p
LEFT JOIN pre ON pre.user_id = p.user_id
ORDER BY p.user_id
