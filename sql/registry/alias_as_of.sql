-- Where :alias pointed for day :dt: its latest move made for a day up to :dt (a backfill
-- scores each day with that day's model, not with one trained on later days).
SELECT to_version FROM alias_history
WHERE alias = :alias AND dt IS NOT NULL AND dt <= :dt
ORDER BY dt DESC, moved_at DESC
LIMIT 1
