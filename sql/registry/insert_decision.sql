INSERT INTO promotion_decisions (dt, challenger, champion_before, champion_after, decision,
                                 reason, decided_at, experiment_id, evidence_json)
VALUES (:dt, :challenger, :champion_before, :champion_after, :decision, :reason, :at,
        :experiment_id, :evidence_json)
