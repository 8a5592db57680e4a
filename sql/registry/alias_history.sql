SELECT alias, from_version, to_version, moved_at, moved_by, reason, dt
FROM alias_history
WHERE alias = :alias
ORDER BY moved_at, dt
