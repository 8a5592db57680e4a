-- Which migration files this warehouse has applied, with their SHA-256: `flywheel migrate`
-- applies the missing ones in order and refuses a file changed after it was applied (a change
-- to the schema is a new numbered file, never an edit).
CREATE TABLE IF NOT EXISTS schema_migrations (
    version VARCHAR PRIMARY KEY,
    sha256 VARCHAR NOT NULL,
    applied_at TIMESTAMP NOT NULL,
    applied_by VARCHAR NOT NULL
);
