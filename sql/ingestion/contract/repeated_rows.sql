-- The rows i of `vals` whose value v appeared on an earlier row (the first copy is kept), as
-- pandas' duplicated(keep='first') marks them, nulls being one value. Run by the in-memory
-- DuckDB of flywheel_assets.platform.arrow_compute, never against the warehouse.
SELECT i
FROM vals
QUALIFY row_number() OVER (PARTITION BY v ORDER BY i) > 1
