-- The newest feature snapshot strictly before day :day (what serving on :day may use).
SELECT MAX(dt) FROM item_features WHERE dt < :day
