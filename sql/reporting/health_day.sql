-- How the day's served traffic did: requests, impressions, clicks, purchases, the champion arm's
-- model (the most shown one), and the day's decision (flywheel_health).
WITH day_events AS (
    SELECT event_type, request_id, variant, model_version
    FROM events
    WHERE dt = :dt
),
champion AS (
    SELECT model_version
    FROM day_events
    WHERE event_type = 'impression' AND (variant = 'champion' OR variant IS NULL)
    GROUP BY model_version
    ORDER BY COUNT(*) DESC, model_version
    LIMIT 1
)
SELECT
    COUNT(DISTINCT CASE WHEN event_type = 'impression' THEN request_id END) AS requests,
    SUM(CASE WHEN event_type = 'impression' THEN 1 ELSE 0 END) AS impressions,
    SUM(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END) AS clicks,
    SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchases,
    (SELECT model_version FROM champion) AS champion,
    (SELECT MAX(decision) FROM promotion_decisions WHERE dt = :dt) AS decision
FROM day_events
