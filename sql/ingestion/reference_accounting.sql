-- Where every row of a day of reference data (catalog or users) or of order lines went (see
-- sql/schema/005_accounting.sql): read, accepted, quarantined for a reason, and duplicates (a
-- later line for the same id, which wins). {{accepted}} is the table the source's accepted rows
-- go to; the source's name is bound (:source).
-- @template accepted: items | users | orders
SELECT
    (SELECT COALESCE(SUM(rows_read), 0) FROM ingested_files WHERE dt = :dt AND source = :source) AS rows_read,
    (SELECT COUNT(*) FROM {{accepted}} WHERE dt = :dt) AS rows_accepted,
    (SELECT COUNT(*) FROM quarantine
     WHERE dt = :dt AND source = :source AND reason NOT LIKE 'duplicate%') AS rows_quarantined,
    (SELECT COUNT(*) FROM quarantine
     WHERE dt = :dt AND source = :source AND reason LIKE 'duplicate%') AS rows_duplicate
