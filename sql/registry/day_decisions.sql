-- The promotion decision of each day in [:from_dt, :to_dt], named in full: a day that
-- concludes an experiment and starts the next reads "reject+experiment" or
-- "promote+experiment" (the decision's evidence names the experiment it started). The demo's
-- table and `flywheel status` both show this name.
SELECT d.dt,
       d.decision || CASE WHEN d.decision <> 'experiment'
                               AND d.evidence_json LIKE '%"started_experiment"%'
                          THEN '+experiment' ELSE '' END AS decision,
       d.challenger
FROM promotion_decisions d
WHERE d.dt >= :from_dt AND d.dt <= :to_dt
ORDER BY d.dt
