SELECT dt, challenger, champion_before, champion_after, decision, reason, experiment_id,
       evidence_json, decided_at
FROM promotion_decisions
WHERE dt = :dt
