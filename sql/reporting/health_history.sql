-- The flywheel's days up to :dt (at most :n), with the simulator's truth where the demo wrote it.
SELECT h.dt, h.requests, h.ctr, h.purchase_rate, h.champion, h.decision,
       s.oracle_share, s.baseline_share
FROM flywheel_health h
LEFT JOIN simulator_days s ON s.dt = h.dt
WHERE h.dt <= :dt AND h.dt > CAST(:dt AS DATE) - :n
ORDER BY h.dt
