-- Where every catalog row of a day went (see sql/schema/005_accounting.sql): read, accepted,
-- quarantined for a reason, and duplicates (a later line for the same id, which wins).
SELECT
    (SELECT COALESCE(SUM(rows_read), 0) FROM ingested_files WHERE dt = :dt AND source = 'catalog') AS rows_read,
    (SELECT COUNT(*) FROM items WHERE dt = :dt) AS rows_accepted,
    (SELECT COUNT(*) FROM quarantine
     WHERE dt = :dt AND source = 'catalog' AND reason NOT LIKE 'duplicate%') AS rows_quarantined,
    (SELECT COUNT(*) FROM quarantine
     WHERE dt = :dt AND source = 'catalog' AND reason LIKE 'duplicate%') AS rows_duplicate
