SELECT dt, feature_dt, request_id, user_id, item_id, event_time, position, propensity,
       model_version, variant, label_click, label_purchase
FROM training_examples WHERE dt = :dt
