-- Real-time features' input, point in time (flywheel_assets/realtime/features.py): for each
-- distinct request among the `candidates`, the counted events (views, clicks, carts) of the same
-- session and user whose event time lies in [request time - 1 hour, request time): strictly
-- before the request, so its own feedback never leaks in. An event's category and brand are its
-- item's in the feature snapshot the request is scored with (feature_dt), as in serving.
--
-- Events that had arrived by then: an event's partition (the day it arrived) must not be later
-- than the request's day. The window (3600 seconds) is realtime.features.WINDOW; a test keeps
-- them equal. features.vector generates the per-scope counts over this relation.
SELECT r.request_id, r.user_id, r.session_id, r.event_time,
       e.event_type, ie.category, ie.brand
FROM (
    SELECT DISTINCT request_id, user_id, session_id, event_time, feature_dt
    FROM candidates
    WHERE session_id IS NOT NULL
) r
JOIN events e
  ON e.session_id = r.session_id AND e.user_id = r.user_id
 AND e.event_time < r.event_time
 AND e.event_time >= r.event_time - INTERVAL '3600 seconds'
 AND e.dt >= CAST(r.event_time AS DATE) - 1
 AND e.dt <= CAST(r.event_time AS DATE)
LEFT JOIN item_features ie ON ie.item_id = e.item_id AND ie.dt = r.feature_dt
WHERE e.event_type IN ('view', 'click', 'add_to_cart')
  -- the whole scan bounded by the candidates' days, so a partitioned table is pruned
  AND e.dt >= (SELECT CAST(MIN(event_time) AS DATE) - 1 FROM candidates)
  AND e.dt <= (SELECT CAST(MAX(event_time) AS DATE) FROM candidates)
