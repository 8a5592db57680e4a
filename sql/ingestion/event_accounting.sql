-- Where every event row of a day went: landed = raw + quarantined at ingestion,
-- raw = accepted + quarantined at the quality stage. `landed` counts landing-file lines and
-- the topic's messages up to the watermark raw_events copied (ingested_files rows with
-- fmt = 'kafka'); Kafka messages consumed after it wait for the day's next run.
-- `duplicates` is the part of the quarantined rows that were repeats of an accepted event.
-- A released row (quarantine_releases) counts in raw, no longer in quarantined_ingestion
-- (quarantine_open leaves it out).
WITH kafka_watermark AS (
    SELECT MAX(ingested_at) AS w FROM ingested_files
    WHERE dt = :dt AND source = 'events' AND fmt = 'kafka'
)
SELECT
    (SELECT COALESCE(SUM(rows_read), 0) FROM ingested_files WHERE dt = :dt AND source = 'events') AS landed,
    (SELECT COUNT(*) FROM raw_events WHERE dt = :dt) AS raw,
    (SELECT COUNT(*) FROM quarantine_open q
     WHERE q.dt = :dt AND q.source = 'events'
       AND (q.stage = 'ingestion'
            OR (q.stage = 'kafka' AND q.quarantined_at <= (SELECT w FROM kafka_watermark)))) AS quarantined_ingestion,
    (SELECT COUNT(*) FROM events WHERE dt = :dt) AS accepted,
    (SELECT COUNT(*) FROM quarantine WHERE dt = :dt AND source = 'events' AND stage = 'quality') AS quarantined_quality,
    (SELECT COUNT(*) FROM quarantine q
     WHERE q.dt = :dt AND q.source = 'events' AND q.reason LIKE 'duplicate_event_id%'
       AND (q.stage <> 'kafka' OR q.quarantined_at <= (SELECT w FROM kafka_watermark))) AS duplicates
