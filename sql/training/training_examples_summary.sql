SELECT COUNT(*) AS n_rows,
       COALESCE(SUM(label_click), 0) AS clicks,
       COALESCE(SUM(label_purchase), 0) AS purchases
FROM training_examples WHERE dt = :dt
