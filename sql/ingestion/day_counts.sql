-- Event rows per day in [:from_dt, :to_dt], in the one vocabulary of the row accounting
-- (docs/ingestion.md): read = accepted + quarantined + duplicates. `quarantined` leaves the
-- duplicates out (they are counted on their own) and released rows out (they are accepted).
-- A day whose quality stage has not run yet has no accounting row: it shows what was read,
-- and NULL for the rest (not yet accounted). `landed` is what the files and the topic hold
-- now: when it differs from the accounting's read, the day was ingested again since. The demo's table, `flywheel status` and the
-- accepted_events asset's metadata all show these numbers under these names.
WITH landed AS (
    SELECT dt, SUM(rows_read) AS rows_read
    FROM ingested_files
    WHERE source = 'events' AND dt >= :from_dt AND dt <= :to_dt
    GROUP BY dt
),
accounted AS (
    SELECT dt, rows_read, rows_accepted, rows_quarantined, rows_duplicate
    FROM ingestion_accounting
    WHERE source = 'events' AND dt >= :from_dt AND dt <= :to_dt
)
SELECT COALESCE(a.dt, l.dt) AS dt,
       COALESCE(a.rows_read, l.rows_read) AS "read",
       a.rows_accepted AS accepted,
       a.rows_quarantined AS quarantined,
       a.rows_duplicate AS duplicates,
       l.rows_read AS landed
FROM accounted a
FULL OUTER JOIN landed l ON l.dt = a.dt
ORDER BY 1
