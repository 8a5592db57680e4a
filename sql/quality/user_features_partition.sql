-- One day's snapshot of user_features for its suite and drift check.
SELECT * FROM user_features WHERE dt = :dt
