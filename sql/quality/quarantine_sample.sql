-- The first open quarantined event rows of each reason of the day, for the check's metadata.
-- Payloads are stored with personal fields already pseudonymised.
SELECT stage, reason, source_file, line_no, payload
FROM (
    SELECT q.stage, q.reason, q.source_file, q.line_no, q.payload,
           ROW_NUMBER() OVER (PARTITION BY q.reason ORDER BY q.source_file, q.line_no) AS k
    FROM quarantine_open q
    WHERE q.dt = :dt AND q.source = 'events'
) s
WHERE k <= :per_reason
ORDER BY reason, source_file, line_no
