-- Recorded holdout scores of one role on one day.
SELECT dt, model_version, score FROM score_samples WHERE role = :role AND dt = :dt
