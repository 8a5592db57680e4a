-- Open (not yet released) quarantined event rows of a day at the ingestion or Kafka stage,
-- the rows a release may fix; optionally only one reason.
SELECT q.dt, q.stage, q.reason, q.source_file, q.line_no, q.payload
FROM quarantine q
WHERE q.dt = :dt AND q.source = 'events' AND q.stage IN ('ingestion', 'kafka')
  AND (:reason IS NULL OR q.reason = :reason)
  AND NOT EXISTS (SELECT 1 FROM quarantine_releases r
                  WHERE r.dt = q.dt AND r.source_file = q.source_file AND r.line_no = q.line_no)
ORDER BY q.source_file, q.line_no
