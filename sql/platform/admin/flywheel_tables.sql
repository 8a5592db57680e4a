-- The warehouse's tables and views (its schema and the analysts' views) and their owners.
SELECT n.nspname AS schema_name, c.relname AS table_name, c.relkind AS kind,
       pg_get_userbyid(c.relowner) AS owner
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN (current_schema(), 'analyst') AND c.relkind IN ('r', 'v', 'p')
ORDER BY n.nspname, c.relname
