-- The complement of accept_events.sql: every raw row of the day lands in exactly one of
-- `events` or `quarantine`, with the first failing rule as the reason.
INSERT INTO quarantine (dt, source, stage, source_file, line_no, reason, payload, quarantined_at)
SELECT r.dt, 'events', 'quality', r.source_file, r.line_no,
       CASE
           WHEN r.copy_no > 1 THEN 'duplicate_event_id'
           WHEN EXISTS (SELECT 1 FROM events e WHERE e.event_id = r.event_id AND e.dt <> :dt)
               THEN 'duplicate_event_id_other_day'
           ELSE 'unknown_item'
       END,
       r.event_id,
       :now
FROM (
    SELECT raw.*,
           ROW_NUMBER() OVER (PARTITION BY raw.event_id ORDER BY raw.source_file, raw.line_no) AS copy_no
    FROM raw_events raw
    WHERE raw.dt = :dt
) r
WHERE r.copy_no > 1
   OR EXISTS (SELECT 1 FROM events e WHERE e.event_id = r.event_id AND e.dt <> :dt)
   OR NOT EXISTS (SELECT 1 FROM items i WHERE i.item_id = r.item_id AND i.dt <= :dt)
