-- Fresh planner statistics (decision 88). A stage role rewrites partitions of tables it does
-- not own, and PostgreSQL 15 lets only a table's owner ANALYZE it. This function runs ANALYZE
-- as its owner, {owner}, on a table of {schema} that the owner owns and the calling login may
-- DELETE from (what a partition rewrite needs), named by the caller and quoted, never SQL.
-- The stages that write may call it; serving writes nothing.
CREATE OR REPLACE FUNCTION {schema}.flywheel_analyze(target text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel oid := to_regclass(format('%I.%I', '{schema}', target));
BEGIN
    IF rel IS NULL OR NOT EXISTS (
        SELECT 1 FROM pg_class
        WHERE oid = rel AND relkind IN ('r', 'p') AND relowner = current_user::regrole
    ) OR NOT has_table_privilege(session_user, rel, 'DELETE') THEN
        RAISE EXCEPTION 'flywheel_analyze: % is not a table this login rewrites', target
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE format('ANALYZE %I.%I', '{schema}', target);
END
$$;
ALTER FUNCTION {schema}.flywheel_analyze(text) OWNER TO {owner};
REVOKE ALL ON FUNCTION {schema}.flywheel_analyze(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION {schema}.flywheel_analyze(text) FROM {serving}, {analyst};
GRANT EXECUTE ON FUNCTION {schema}.flywheel_analyze(text) TO {ingestion}, {transformation}, {training};
