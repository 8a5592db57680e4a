-- The complement of accept_events.sql: every raw row of the day lands in exactly one of
-- `events` or `quarantine`, with the first failing rule as the reason.
INSERT INTO quarantine (dt, source, stage, source_file, line_no, reason, payload, quarantined_at)
SELECT r.dt, 'events', 'quality', r.source_file, r.line_no,
       CASE
           -- A later copy that differs from the first in what happened is not a redelivery:
           -- two events share an id (a producer bug), and which one is true is unknown.
           WHEN r.copy_no > 1
                AND (r.event_type IS DISTINCT FROM r.first_type
                     OR r.event_time IS DISTINCT FROM r.first_time
                     OR r.user_id IS DISTINCT FROM r.first_user
                     OR r.item_id IS DISTINCT FROM r.first_item
                     OR r.price IS DISTINCT FROM r.first_price
                     OR r.quantity IS DISTINCT FROM r.first_quantity) THEN 'event_id_conflict'
           WHEN r.copy_no > 1 THEN 'duplicate_event_id'
           WHEN EXISTS (SELECT 1 FROM events e WHERE e.event_id = r.event_id AND e.dt <> :dt)
               THEN 'duplicate_event_id_other_day'
           ELSE 'unknown_item'
       END,
       r.event_id,
       :now
FROM (
    SELECT raw.*,
           ROW_NUMBER() OVER w AS copy_no,
           FIRST_VALUE(raw.event_type) OVER w AS first_type,
           FIRST_VALUE(raw.event_time) OVER w AS first_time,
           FIRST_VALUE(raw.user_id) OVER w AS first_user,
           FIRST_VALUE(raw.item_id) OVER w AS first_item,
           FIRST_VALUE(raw.price) OVER w AS first_price,
           FIRST_VALUE(raw.quantity) OVER w AS first_quantity
    FROM raw_events raw
    WHERE raw.dt = :dt
    WINDOW w AS (PARTITION BY raw.event_id ORDER BY raw.source_file, raw.line_no)
) r
WHERE r.copy_no > 1
   OR EXISTS (SELECT 1 FROM events e WHERE e.event_id = r.event_id AND e.dt <> :dt)
   OR NOT EXISTS (SELECT 1 FROM items i WHERE i.item_id = r.item_id AND i.dt <= :dt)
