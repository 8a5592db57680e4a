-- Fresh planner statistics (decision 88). A stage role rewrites partitions of tables it does
-- not own, and PostgreSQL 15 lets only a table's owner ANALYZE it. This function runs ANALYZE
-- as its owner, {owner}, on a table of {schema} named by the caller (quoted, never SQL). The
-- stage roles may call it; ANALYZE only refreshes statistics.
CREATE OR REPLACE FUNCTION {schema}.flywheel_analyze(target text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('ANALYZE %I.%I', '{schema}', target);
END
$$;
ALTER FUNCTION {schema}.flywheel_analyze(text) OWNER TO {owner};
REVOKE ALL ON FUNCTION {schema}.flywheel_analyze(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION {schema}.flywheel_analyze(text) TO {ingestion}, {transformation}, {training}, {serving};
