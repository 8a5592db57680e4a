-- Who was champion when day :dt began: the outcome of the latest decision before it.
SELECT champion_after FROM promotion_decisions WHERE dt < :dt ORDER BY dt DESC LIMIT 1
