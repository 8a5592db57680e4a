-- A warehouse table's columns and types, for the asset's dagster/column_schema metadata.
SELECT column_name, data_type
FROM information_schema.columns
WHERE table_name = :table AND table_schema = current_schema()
ORDER BY ordinal_position
