-- Quality stage: move a day's raw events into `events`, except rows that break a
-- relational rule (those go to quarantine through quarantine_events.sql, with the same rules).
-- Rules: the event_id was not accepted on another day (redelivery); the item exists in the
-- catalog delivered so far.
INSERT INTO events (dt, event_id, event_type, event_time, user_id, item_id, session_id,
                    request_id, position, propensity, model_version, variant, price)
SELECT r.dt, r.event_id, r.event_type, r.event_time, r.user_id, r.item_id, r.session_id,
       r.request_id, r.position, r.propensity, r.model_version, r.variant, r.price
FROM raw_events r
WHERE r.dt = :dt
  AND NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = r.event_id AND e.dt <> :dt)
  AND EXISTS (SELECT 1 FROM items i WHERE i.item_id = r.item_id AND i.dt <= :dt)
