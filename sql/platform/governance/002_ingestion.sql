-- Ingestion (ingestion, kafka and quality stages; the served_requests log): writes raw events,
-- accepted events, catalog, users, order lines, quarantine and its own bookkeeping. DELETE only because a
-- partition is replaced whole (DELETE + INSERT in one transaction) when a day is re-run.
GRANT SELECT, INSERT, DELETE ON
    ingested_files, raw_events, events, quarantine, items, users, orders,
    kafka_events, kafka_batches, ingestion_accounting, served_requests
TO {ingestion};
GRANT SELECT, INSERT, UPDATE ON kafka_offsets TO {ingestion};
-- What the shop simulator knows (written by `flywheel demo`, which plays the shop: an input).
GRANT SELECT, INSERT, DELETE ON simulator_days, simulator_demand TO {ingestion};
-- Releases: a person fixes quarantined rows (`flywheel quarantine release`, on a login that is
-- a member of this role) and ingestion applies them on the next run. Appended, never changed,
-- and each one goes to the audit trail.
GRANT SELECT, INSERT ON quarantine_releases TO {ingestion};
GRANT SELECT ON quarantine_open TO {ingestion};
GRANT INSERT ON audit_log TO {ingestion};
-- Failed runs, recorded by the alert sensor (which runs as the pipeline's login, outside any
-- step): appended, never changed.
GRANT SELECT, INSERT ON alerts TO {ingestion};
