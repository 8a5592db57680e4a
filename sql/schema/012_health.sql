-- One row per day of how the flywheel did (the flywheel_health asset), and what the shop
-- simulator knows that the warehouse cannot (written by `flywheel demo`, absent otherwise).
CREATE TABLE IF NOT EXISTS flywheel_health (
    dt DATE NOT NULL,
    requests BIGINT NOT NULL,
    impressions BIGINT NOT NULL,
    clicks BIGINT NOT NULL,
    purchases BIGINT NOT NULL,
    ctr DOUBLE PRECISION,
    purchase_rate DOUBLE PRECISION,
    champion VARCHAR,
    decision VARCHAR
);

CREATE TABLE IF NOT EXISTS simulator_days (
    dt DATE NOT NULL,
    oracle_share DOUBLE PRECISION NOT NULL,
    baseline_share DOUBLE PRECISION NOT NULL
);
