DELETE FROM score_samples WHERE dt = :dt
