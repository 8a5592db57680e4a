-- One day's partition of user_item_activity_daily for its suite.
SELECT * FROM user_item_activity_daily WHERE dt = :dt
