DELETE FROM offline_evaluations WHERE dt = :dt
