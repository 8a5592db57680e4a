-- Core warehouse tables. Portable SQL: runs unchanged on DuckDB and PostgreSQL.
-- Every daily table carries `dt`, the partition that wrote it, so a partition can be replaced
-- atomically (DELETE + INSERT in one transaction) and re-materialising is idempotent.

CREATE TABLE IF NOT EXISTS ingested_files (
    dt DATE NOT NULL,
    source VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    fmt VARCHAR NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_accepted BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    ingested_at TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS raw_events (
    dt DATE NOT NULL,
    event_id VARCHAR NOT NULL,
    event_type VARCHAR NOT NULL,
    event_time TIMESTAMP NOT NULL,
    user_id VARCHAR NOT NULL,
    item_id VARCHAR NOT NULL,
    session_id VARCHAR,
    request_id VARCHAR,
    position INTEGER,
    propensity DOUBLE PRECISION,
    model_version VARCHAR,
    variant VARCHAR,
    price DOUBLE PRECISION,
    source_file VARCHAR NOT NULL,
    line_no BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS events (
    dt DATE NOT NULL,
    event_id VARCHAR NOT NULL,
    event_type VARCHAR NOT NULL,
    event_time TIMESTAMP NOT NULL,
    user_id VARCHAR NOT NULL,
    item_id VARCHAR NOT NULL,
    session_id VARCHAR,
    request_id VARCHAR,
    position INTEGER,
    propensity DOUBLE PRECISION,
    model_version VARCHAR,
    variant VARCHAR,
    price DOUBLE PRECISION
);

CREATE TABLE IF NOT EXISTS quarantine (
    dt DATE NOT NULL,
    source VARCHAR NOT NULL,
    stage VARCHAR NOT NULL,
    source_file VARCHAR,
    line_no BIGINT,
    reason VARCHAR NOT NULL,
    payload TEXT,
    quarantined_at TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS items (
    dt DATE NOT NULL,
    item_id VARCHAR NOT NULL,
    title VARCHAR,
    category VARCHAR NOT NULL,
    brand VARCHAR,
    price DOUBLE PRECISION NOT NULL,
    valid_from TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS users (
    dt DATE NOT NULL,
    user_id VARCHAR NOT NULL,
    region VARCHAR,
    device VARCHAR,
    signup_date DATE
);
