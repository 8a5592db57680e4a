-- The newest audit entry of one action (e.g. the configuration last recorded).
SELECT logged_at, actor, details FROM audit_log WHERE action = :action
ORDER BY logged_at DESC LIMIT 1
