-- Kafka ingestion. Rows, quarantined messages, the batch log and the next offset of every
-- topic partition are written in ONE transaction per batch, so the stored offset always says
-- exactly which messages are in the warehouse: a crash anywhere gives neither loss nor
-- duplicates, and a restart seeks to kafka_offsets.

-- Events from the topic that passed the event contract, pseudonymised; `dt` is the UTC day
-- the broker received the message (its timestamp), the Kafka counterpart of a landing folder's
-- dt=. raw_events of that day reads them together with the day's landing files.
CREATE TABLE IF NOT EXISTS kafka_events (
    dt DATE NOT NULL,
    topic VARCHAR NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset BIGINT NOT NULL,
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
    consumed_at TIMESTAMP NOT NULL
);

-- The next offset to read, per consumer (one flywheel deployment) and topic partition.
CREATE TABLE IF NOT EXISTS kafka_offsets (
    consumer VARCHAR NOT NULL,
    topic VARCHAR NOT NULL,
    kafka_partition INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (consumer, topic, kafka_partition)
);

-- One row per batch, topic partition and day: what was read and where it went.
CREATE TABLE IF NOT EXISTS kafka_batches (
    dt DATE NOT NULL,
    consumer VARCHAR NOT NULL,
    topic VARCHAR NOT NULL,
    kafka_partition INTEGER NOT NULL,
    first_offset BIGINT NOT NULL,
    last_offset BIGINT NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_accepted BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    consumed_at TIMESTAMP NOT NULL
);
