SELECT dt, event_id, event_type, event_time, user_id, item_id, session_id, request_id, position,
       propensity, model_version, variant, price
FROM events WHERE dt = :dt
