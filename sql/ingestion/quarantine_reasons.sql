-- Why a day's rows of a source were quarantined on the way in (files and topic), by reason.
SELECT split_part(reason, ':', 1) AS reason, COUNT(*) AS n
FROM quarantine
WHERE dt = :dt AND source = :source AND stage IN ('ingestion', 'kafka')
GROUP BY split_part(reason, ':', 1)
ORDER BY n DESC, reason
