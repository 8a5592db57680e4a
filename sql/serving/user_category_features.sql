-- One feature snapshot of user_category_features for the serving bundle (online_features.py), as
-- features/feature_vector.sql joins it: the rows of snapshot :feature_dt.
SELECT * FROM user_category_features WHERE dt = CAST(:feature_dt AS DATE)
