-- One day of raw events (files and topic, before the relational rules) for the raw_events suite.
SELECT dt, event_id, event_type, event_time, user_id, item_id, session_id, request_id, position,
       propensity, model_version, variant, price, source_file, line_no
FROM raw_events WHERE dt = :dt
