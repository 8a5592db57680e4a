-- One day's snapshot of region_brand_features for its suite and drift check.
SELECT * FROM region_brand_features WHERE dt = :dt
