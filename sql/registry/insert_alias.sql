INSERT INTO model_aliases (alias, model_version, updated_at) VALUES (:alias, :model_version, :at)
