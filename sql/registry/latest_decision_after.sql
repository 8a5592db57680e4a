-- The most recent decision recorded for a day later than :dt, if any.
SELECT dt, decision, champion_after FROM promotion_decisions WHERE dt > :dt ORDER BY dt DESC LIMIT 1
