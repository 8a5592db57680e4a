-- One applied migration file.
INSERT INTO schema_migrations (version, sha256, applied_at, applied_by)
VALUES (:version, :sha256, :applied_at, :applied_by)
