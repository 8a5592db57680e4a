-- One day's snapshot of item_features for its suite and drift check.
SELECT * FROM item_features WHERE dt = :dt
