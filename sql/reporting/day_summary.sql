-- One day of the flywheel at a glance (the demo's table and `flywheel status`).
SELECT
    (SELECT COALESCE(SUM(rows_read), 0) FROM ingested_files WHERE dt = :dt AND source = 'events') AS events,
    (SELECT COUNT(*) FROM quarantine WHERE dt = :dt) AS quarantined,
    (SELECT SUM(CASE WHEN event_type = 'impression' THEN 1 ELSE 0 END) FROM events WHERE dt = :dt) AS impressions,
    (SELECT SUM(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END) FROM events WHERE dt = :dt) AS clicks,
    (SELECT SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) FROM events WHERE dt = :dt) AS purchases,
    (SELECT COUNT(DISTINCT request_id) FROM events WHERE dt = :dt AND event_type = 'impression') AS requests,
    (SELECT challenger FROM promotion_decisions WHERE dt = :dt) AS challenger,
    -- every decision of the day: one that concludes an experiment and starts the next reads
    -- "reject+experiment" (the decision's evidence names the experiment it started)
    (SELECT d.decision || CASE WHEN d.decision <> 'experiment'
                                    AND d.evidence_json LIKE '%"started_experiment"%'
                               THEN '+experiment' ELSE '' END
       FROM promotion_decisions d WHERE d.dt = :dt) AS decision
