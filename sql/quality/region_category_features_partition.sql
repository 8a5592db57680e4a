-- One day's snapshot of region_category_features for its suite and drift check.
SELECT * FROM region_category_features WHERE dt = :dt
