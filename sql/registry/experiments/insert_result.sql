INSERT INTO experiment_results (experiment_id, dt, look, metric, kind, control_mean,
                                treatment_mean, effect, ci_low, ci_high, p_value, p_adjusted,
                                n_control, n_treatment, margin, outcome, note,
                                computed_at)
VALUES (:experiment_id, :dt, :look, :metric, :kind, :control_mean, :treatment_mean, :effect,
        :ci_low, :ci_high, :p_value, :p_adjusted, :n_control, :n_treatment, :margin, :outcome,
        :note, :at)
