SELECT MAX(dt) FROM promotion_decisions
