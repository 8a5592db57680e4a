-- The migrations this warehouse has applied.
SELECT version, sha256, applied_at, applied_by FROM schema_migrations ORDER BY version
