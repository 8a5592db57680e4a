-- One day of accepted events for the accepted_events suite, with two relational facts that GX
-- cannot compute row by row (1 = holds, 0 = broken):
--   item_in_catalog_at_event_time: the item had a catalog row valid at the event's time;
--   purchase_after_engagement: a purchase follows a click or add_to_cart of the same user in
--     the same session (same user when the session is unknown), on this day or the day before
--     (sessions cross midnight). 1 for every other event type.
SELECT e.dt, e.event_id, e.event_type, e.event_time, e.user_id, e.item_id, e.session_id,
       e.request_id, e.position, e.propensity, e.model_version, e.variant, e.price, e.quantity,
       CASE WHEN EXISTS (SELECT 1 FROM items i
                         WHERE i.item_id = e.item_id AND i.dt <= :dt
                           AND i.valid_from <= e.event_time)
            THEN 1 ELSE 0 END AS item_in_catalog_at_event_time,
       CASE WHEN e.event_type <> 'purchase' THEN 1
            WHEN EXISTS (SELECT 1 FROM events p
                         WHERE p.dt >= :prev_dt AND p.dt <= :dt
                           AND p.user_id = e.user_id
                           AND p.event_type IN ('click', 'add_to_cart')
                           AND p.event_time <= e.event_time
                           AND (e.session_id IS NULL OR p.session_id = e.session_id))
            THEN 1 ELSE 0 END AS purchase_after_engagement
FROM events e WHERE e.dt = :dt
