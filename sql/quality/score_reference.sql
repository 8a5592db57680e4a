-- Recorded holdout scores of one role over the drift reference window [:start_dt, :end_dt].
SELECT dt, model_version, score FROM score_samples
WHERE role = :role AND dt >= :start_dt AND dt <= :end_dt
