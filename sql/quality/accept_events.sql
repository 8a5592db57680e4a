-- Quality stage: move a day's raw events into `events`, except rows that break a
-- relational rule (those go to quarantine through quarantine_events.sql, with the same rules).
-- Rules, in order: the first copy of an event_id within the day wins (landing files before the
-- topic, then by file and line or partition and offset); the event_id was not accepted on
-- another day (redelivery); the item exists in the catalog delivered so far.
INSERT INTO events (dt, event_id, event_type, event_time, user_id, item_id, session_id,
                    request_id, position, propensity, model_version, variant, price, quantity)
SELECT r.dt, r.event_id, r.event_type, r.event_time, r.user_id, r.item_id, r.session_id,
       r.request_id, r.position, r.propensity, r.model_version, r.variant, r.price, r.quantity
FROM (
    SELECT raw.*,
           ROW_NUMBER() OVER (PARTITION BY raw.event_id ORDER BY raw.source_file, raw.line_no) AS copy_no
    FROM raw_events raw
    WHERE raw.dt = :dt
) r
WHERE r.copy_no = 1
  AND NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = r.event_id AND e.dt <> :dt)
  AND EXISTS (SELECT 1 FROM items i WHERE i.item_id = r.item_id AND i.dt <= :dt)
