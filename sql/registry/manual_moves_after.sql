-- Champion moves made by anyone but the daily decision (a rollback) after :at.
SELECT COUNT(*) FROM alias_history
WHERE alias = 'champion' AND moved_by <> 'promotion_decision' AND moved_at > :at
