-- The user_features snapshots of the drift reference window [:start_dt, :end_dt].
SELECT * FROM user_features WHERE dt >= :start_dt AND dt <= :end_dt
