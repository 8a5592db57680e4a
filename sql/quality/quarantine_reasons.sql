-- The day's open quarantine of events by stage and reason (rows released after a fix are not
-- open): the quarantine share check's numbers.
SELECT q.stage, q.reason, COUNT(*) AS n
FROM quarantine_open q
WHERE q.dt = :dt AND q.source = 'events'
GROUP BY q.stage, q.reason
ORDER BY n DESC, q.stage, q.reason
