SELECT experiment_id, dt, look, metric, kind, control_mean, treatment_mean, effect, ci_low,
       ci_high, p_value, p_adjusted, n_control, n_treatment, margin, outcome, note
FROM experiment_results
WHERE dt = :dt
ORDER BY kind, metric
