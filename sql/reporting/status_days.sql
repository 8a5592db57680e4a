-- Per partition day in [:from_dt, :to_dt]: events landed (files and topic rows read),
-- accepted, open quarantine, when ingestion last ran, and the day's decision (`flywheel status`).
-- Days without any row are absent: the caller fills the calendar.
WITH landed AS (
    SELECT dt, SUM(rows_read) AS landed, MAX(ingested_at) AS last_ingested
    FROM ingested_files
    WHERE source = 'events' AND dt >= :from_dt AND dt <= :to_dt
    GROUP BY dt
),
accepted AS (
    SELECT dt, COUNT(*) AS accepted
    FROM events
    WHERE dt >= :from_dt AND dt <= :to_dt
    GROUP BY dt
),
quarantined AS (
    SELECT dt, COUNT(*) AS quarantined
    FROM quarantine_open
    WHERE dt >= :from_dt AND dt <= :to_dt
    GROUP BY dt
),
decided AS (
    SELECT dt, MAX(decision) AS decision
    FROM promotion_decisions
    WHERE dt >= :from_dt AND dt <= :to_dt
    GROUP BY dt
),
days AS (
    SELECT dt FROM landed UNION SELECT dt FROM accepted
    UNION SELECT dt FROM quarantined UNION SELECT dt FROM decided
)
SELECT d.dt, COALESCE(l.landed, 0) AS landed, COALESCE(a.accepted, 0) AS accepted,
       COALESCE(q.quarantined, 0) AS quarantined, l.last_ingested, c.decision
FROM days d
LEFT JOIN landed l ON l.dt = d.dt
LEFT JOIN accepted a ON a.dt = d.dt
LEFT JOIN quarantined q ON q.dt = d.dt
LEFT JOIN decided c ON c.dt = d.dt
ORDER BY d.dt
