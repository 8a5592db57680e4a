DELETE FROM experiment_results WHERE dt = :dt
