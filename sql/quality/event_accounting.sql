-- Where every event row of a day went: landed = raw + quarantined at ingestion,
-- raw = accepted + quarantined at the quality stage.
SELECT
    (SELECT COALESCE(SUM(rows_read), 0) FROM ingested_files WHERE dt = :dt AND source = 'events') AS landed,
    (SELECT COUNT(*) FROM raw_events WHERE dt = :dt) AS raw,
    (SELECT COUNT(*) FROM quarantine WHERE dt = :dt AND source = 'events' AND stage = 'ingestion') AS quarantined_ingestion,
    (SELECT COUNT(*) FROM events WHERE dt = :dt) AS accepted,
    (SELECT COUNT(*) FROM quarantine WHERE dt = :dt AND source = 'events' AND stage = 'quality') AS quarantined_quality
