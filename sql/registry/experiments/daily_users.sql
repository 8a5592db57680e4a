-- Distinct users served per day over the days before an experiment: sizes its planned_n.
SELECT dt, COUNT(DISTINCT user_id) AS users
FROM events
WHERE event_type = 'impression' AND dt >= :start_dt AND dt <= :end_dt
GROUP BY dt
