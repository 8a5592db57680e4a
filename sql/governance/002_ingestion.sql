-- Ingestion (ingestion, kafka and quality stages; the served_requests log): writes raw events,
-- accepted events, catalog, users, quarantine and its own bookkeeping. DELETE only because a
-- partition is replaced whole (DELETE + INSERT in one transaction) when a day is re-run.
GRANT SELECT, INSERT, DELETE ON
    ingested_files, raw_events, events, quarantine, items, users,
    kafka_events, kafka_batches, ingestion_accounting, served_requests
TO {ingestion};
GRANT SELECT, INSERT, UPDATE ON kafka_offsets TO {ingestion};
-- What the shop simulator knows (written by `flywheel demo`, which plays the shop: an input).
GRANT SELECT, INSERT, DELETE ON simulator_days TO {ingestion};
-- Releases are written by people (`flywheel quarantine release`); ingestion applies them.
GRANT SELECT ON quarantine_releases, quarantine_open TO {ingestion};
-- Failed runs, recorded by the alert sensor (which runs as the pipeline's login, outside any
-- step): appended, never changed.
GRANT SELECT, INSERT ON alerts TO {ingestion};
