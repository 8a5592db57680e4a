-- The newest partition day with any events, landed or accepted (`flywheel status`).
SELECT MAX(dt) FROM (
    SELECT MAX(dt) AS dt FROM ingested_files WHERE source = 'events'
    UNION ALL
    SELECT MAX(dt) AS dt FROM events
) t
