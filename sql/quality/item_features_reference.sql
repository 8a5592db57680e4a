-- The item_features snapshots of the drift reference window [:start_dt, :end_dt].
SELECT * FROM item_features WHERE dt >= :start_dt AND dt <= :end_dt
