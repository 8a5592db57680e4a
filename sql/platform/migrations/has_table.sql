-- Whether a table exists in the warehouse's current schema.
SELECT COUNT(*) FROM information_schema.tables
WHERE table_name = :table AND table_schema = current_schema()
