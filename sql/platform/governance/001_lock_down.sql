-- Least privilege, PostgreSQL only (`flywheel grants`). {owner}, {ingestion}, ... are the
-- role names (prefix + stage), {schema} the warehouse's schema and {tables} flywheel's own
-- tables and views in it (those its migrations create: other applications' tables in the same
-- schema are left alone), all checked to be plain identifiers before they are put here
-- (identifiers cannot be bound parameters). Every file is idempotent: it is re-run after each
-- migration so new tables get their grants.
--
-- Nobody gets anything by default: no table privileges for PUBLIC, no creating objects in the
-- schema (PostgreSQL 15 already refuses the latter; older servers did not).
REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC;
REVOKE ALL ON {tables} FROM PUBLIC;
REVOKE ALL ON {tables} FROM {ingestion}, {transformation}, {training}, {serving}, {analyst};
GRANT USAGE ON SCHEMA {schema} TO {ingestion}, {transformation}, {training}, {serving};
-- Every stage checks that the schema is current before it works.
GRANT SELECT ON schema_migrations TO {ingestion}, {transformation}, {training}, {serving};
