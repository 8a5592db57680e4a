INSERT INTO alias_history (alias, from_version, to_version, moved_at, moved_by, reason, dt)
VALUES (:alias, :from_version, :to_version, :at, :actor, :reason, :dt)
