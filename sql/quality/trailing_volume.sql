-- Raw event counts of the days in [:start_dt, :end_dt] that have any: the volume baseline.
SELECT dt, COUNT(*) AS n
FROM raw_events
WHERE dt >= :start_dt AND dt <= :end_dt
GROUP BY dt
ORDER BY dt
