-- Daily activity aggregates: the only feature tables that read `events`. A row with dt = D
-- holds the events that ARRIVED in partition D, grouped by the UTC day they HAPPENED
-- (event_day). Each snapshot sums the rows with dt <= D over its window of event days, so a
-- day's events are aggregated once (incremental), late arrivals are counted from the day they
-- arrived (point in time), and a backfill sees exactly what the daily runs saw.

CREATE TABLE IF NOT EXISTS user_activity_daily (
    dt DATE NOT NULL,
    event_day DATE NOT NULL,
    user_id VARCHAR NOT NULL,
    impressions BIGINT NOT NULL,
    views BIGINT NOT NULL,
    clicks BIGINT NOT NULL,
    carts BIGINT NOT NULL,
    purchases BIGINT NOT NULL,
    click_price_sum DOUBLE PRECISION,
    click_price_n BIGINT NOT NULL,
    purchase_price_sum DOUBLE PRECISION,
    purchase_price_n BIGINT NOT NULL,
    last_event_time TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS item_activity_daily (
    dt DATE NOT NULL,
    event_day DATE NOT NULL,
    item_id VARCHAR NOT NULL,
    impressions BIGINT NOT NULL,
    views BIGINT NOT NULL,
    clicks BIGINT NOT NULL,
    carts BIGINT NOT NULL,
    purchases BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS user_item_activity_daily (
    dt DATE NOT NULL,
    event_day DATE NOT NULL,
    user_id VARCHAR NOT NULL,
    item_id VARCHAR NOT NULL,
    impressions BIGINT NOT NULL,
    views BIGINT NOT NULL,
    clicks BIGINT NOT NULL,
    carts BIGINT NOT NULL,
    purchases BIGINT NOT NULL,
    last_click_time TIMESTAMP,
    last_event_time TIMESTAMP NOT NULL
);

-- Warehouses created before these columns existed: add them (inserts name their columns, so
-- the position of an added column does not matter).
ALTER TABLE user_features ADD COLUMN IF NOT EXISTS u_impressions_1d BIGINT;
ALTER TABLE user_features ADD COLUMN IF NOT EXISTS u_views_1d BIGINT;
ALTER TABLE user_features ADD COLUMN IF NOT EXISTS u_clicks_1d BIGINT;
ALTER TABLE user_features ADD COLUMN IF NOT EXISTS u_carts_1d BIGINT;
ALTER TABLE user_features ADD COLUMN IF NOT EXISTS u_purchases_1d BIGINT;
ALTER TABLE user_features ADD COLUMN IF NOT EXISTS u_impressions_7d BIGINT;
ALTER TABLE user_features ADD COLUMN IF NOT EXISTS u_views_7d BIGINT;
ALTER TABLE user_features ADD COLUMN IF NOT EXISTS u_carts_7d BIGINT;
ALTER TABLE user_features ADD COLUMN IF NOT EXISTS u_active_days_28d BIGINT;
ALTER TABLE user_features ADD COLUMN IF NOT EXISTS u_avg_purchase_price_28d DOUBLE PRECISION;
ALTER TABLE item_features ADD COLUMN IF NOT EXISTS i_impressions_7d BIGINT;
ALTER TABLE item_features ADD COLUMN IF NOT EXISTS i_clicks_7d BIGINT;
ALTER TABLE item_features ADD COLUMN IF NOT EXISTS i_purchases_7d BIGINT;
ALTER TABLE item_features ADD COLUMN IF NOT EXISTS i_carts_28d BIGINT;
