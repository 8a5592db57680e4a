DELETE FROM promotion_decisions WHERE dt = :dt
