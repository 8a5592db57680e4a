-- One day of the flywheel at a glance (the demo's table): what the served traffic did. The
-- row counts come from ingestion/day_counts and the decision from registry/day_decisions.
SELECT
    (SELECT SUM(CASE WHEN event_type = 'impression' THEN 1 ELSE 0 END) FROM events WHERE dt = :dt) AS impressions,
    (SELECT SUM(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END) FROM events WHERE dt = :dt) AS clicks,
    (SELECT SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) FROM events WHERE dt = :dt) AS purchases,
    (SELECT COUNT(DISTINCT request_id) FROM events WHERE dt = :dt AND event_type = 'impression') AS requests
