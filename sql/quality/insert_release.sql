INSERT INTO quarantine_releases (release_id, dt, source_file, line_no, reason, event_id,
                                 event_type, event_time, user_id, item_id, session_id,
                                 request_id, position, propensity, model_version, variant, price,
                                 quantity, released_at, released_by, why)
VALUES (:release_id, :dt, :source_file, :line_no, :reason, :event_id, :event_type, :event_time,
        :user_id, :item_id, :session_id, :request_id, :position, :propensity, :model_version,
        :variant, :price, :quantity, :released_at, :released_by, :why)
