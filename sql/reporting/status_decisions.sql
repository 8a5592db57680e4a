-- The latest promotion decisions, newest first (`flywheel status`).
SELECT dt, decision, challenger, champion_before, champion_after, experiment_id, reason,
       decided_at
FROM promotion_decisions
ORDER BY dt DESC, decided_at DESC
LIMIT :n
