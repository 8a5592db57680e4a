-- One day's partition of user_brand_features for its suite.
SELECT * FROM user_brand_features WHERE dt = :dt
