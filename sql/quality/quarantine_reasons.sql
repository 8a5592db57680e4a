-- The day's open quarantine of events by stage and reason (rows released after a fix are not
-- open), next to the rows landed: the quarantine share check's numbers.
SELECT q.stage, q.reason, COUNT(*) AS n
FROM quarantine q
WHERE q.dt = :dt AND q.source = 'events'
  AND NOT EXISTS (SELECT 1 FROM quarantine_releases r
                  WHERE q.stage IN ('ingestion', 'kafka')
                    AND r.dt = q.dt AND r.source_file = q.source_file AND r.line_no = q.line_no)
GROUP BY q.stage, q.reason
ORDER BY n DESC, q.stage, q.reason
