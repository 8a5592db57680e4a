-- One day's snapshot of user_item_features for its suite and drift check.
SELECT * FROM user_item_features WHERE dt = :dt
