-- One day's partition of user_activity_daily for its suite.
SELECT * FROM user_activity_daily WHERE dt = :dt
