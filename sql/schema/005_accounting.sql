-- Where every delivered row went, per source and day: read = accepted + quarantined +
-- duplicates. Written by the stage that finishes a source's day (accepted_events for events,
-- catalog_items and users for theirs) in the same transaction as its rows, and proved by
-- blocking asset checks recounting the tables.
CREATE TABLE IF NOT EXISTS ingestion_accounting (
    dt DATE NOT NULL,
    source VARCHAR NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_accepted BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    rows_duplicate BIGINT NOT NULL,
    recorded_at TIMESTAMP NOT NULL
);
