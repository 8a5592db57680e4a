INSERT INTO promotion_decisions (dt, challenger, champion_before, champion_after, decision, reason, decided_at)
VALUES (:dt, :challenger, :champion_before, :champion_after, :decision, :reason, :at)
