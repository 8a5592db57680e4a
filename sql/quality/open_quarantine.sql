-- Open (not yet released) quarantined event rows of a day at the ingestion or Kafka stage,
-- the rows a release may fix; optionally only one reason. (The CAST gives PostgreSQL a type
-- for the parameter when it is NULL.)
SELECT q.dt, q.stage, q.reason, q.source_file, q.line_no, q.payload
FROM quarantine_open q
WHERE q.dt = :dt AND q.source = 'events' AND q.stage IN ('ingestion', 'kafka')
  AND (CAST(:reason AS VARCHAR) IS NULL OR q.reason = :reason)
ORDER BY q.source_file, q.line_no
