-- One day's snapshot of user_category_features for its suite and drift check.
SELECT * FROM user_category_features WHERE dt = :dt
