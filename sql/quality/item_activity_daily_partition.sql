-- One day's partition of item_activity_daily for its suite.
SELECT * FROM item_activity_daily WHERE dt = :dt
