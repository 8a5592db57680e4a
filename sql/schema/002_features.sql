-- Feature snapshots. A row with dt = D describes the state at the end of day D: it uses only
-- events with event_time before D + 1 day that had arrived by then (partition dt <= D).

CREATE TABLE IF NOT EXISTS user_features (
    dt DATE NOT NULL,
    user_id VARCHAR NOT NULL,
    region VARCHAR,
    device VARCHAR,
    u_days_since_signup DOUBLE PRECISION,
    u_impressions_28d BIGINT,
    u_views_28d BIGINT,
    u_clicks_28d BIGINT,
    u_carts_28d BIGINT,
    u_purchases_28d BIGINT,
    u_clicks_7d BIGINT,
    u_purchases_7d BIGINT,
    u_ctr_28d DOUBLE PRECISION,
    u_conversion_28d DOUBLE PRECISION,
    u_avg_click_price_28d DOUBLE PRECISION,
    u_days_since_last_event DOUBLE PRECISION,
    u_impressions_1d BIGINT,
    u_views_1d BIGINT,
    u_clicks_1d BIGINT,
    u_carts_1d BIGINT,
    u_purchases_1d BIGINT,
    u_impressions_7d BIGINT,
    u_views_7d BIGINT,
    u_carts_7d BIGINT,
    u_active_days_28d BIGINT,
    u_avg_purchase_price_28d DOUBLE PRECISION
);

CREATE TABLE IF NOT EXISTS item_features (
    dt DATE NOT NULL,
    item_id VARCHAR NOT NULL,
    category VARCHAR,
    brand VARCHAR,
    i_price DOUBLE PRECISION,
    i_price_change_7d DOUBLE PRECISION,
    i_days_in_catalog DOUBLE PRECISION,
    i_impressions_28d BIGINT,
    i_clicks_28d BIGINT,
    i_purchases_28d BIGINT,
    i_ctr_28d DOUBLE PRECISION,
    i_conversion_28d DOUBLE PRECISION,
    i_impressions_7d BIGINT,
    i_clicks_7d BIGINT,
    i_purchases_7d BIGINT,
    i_carts_28d BIGINT
);

CREATE TABLE IF NOT EXISTS user_category_features (
    dt DATE NOT NULL,
    user_id VARCHAR NOT NULL,
    category VARCHAR NOT NULL,
    uc_impressions_28d BIGINT,
    uc_clicks_28d BIGINT,
    uc_carts_28d BIGINT,
    uc_purchases_28d BIGINT,
    uc_ctr_28d DOUBLE PRECISION,
    uc_click_share_28d DOUBLE PRECISION
);

CREATE TABLE IF NOT EXISTS user_brand_features (
    dt DATE NOT NULL,
    user_id VARCHAR NOT NULL,
    brand VARCHAR NOT NULL,
    ub_impressions_28d BIGINT,
    ub_clicks_28d BIGINT,
    ub_carts_28d BIGINT,
    ub_purchases_28d BIGINT,
    ub_ctr_28d DOUBLE PRECISION,
    ub_click_share_28d DOUBLE PRECISION
);

CREATE TABLE IF NOT EXISTS training_examples (
    dt DATE NOT NULL,
    feature_dt DATE NOT NULL,
    request_id VARCHAR NOT NULL,
    user_id VARCHAR NOT NULL,
    item_id VARCHAR NOT NULL,
    event_time TIMESTAMP NOT NULL,
    position INTEGER,
    propensity DOUBLE PRECISION,
    model_version VARCHAR,
    variant VARCHAR,
    label_click INTEGER NOT NULL,
    label_purchase INTEGER NOT NULL
);

-- Segment-level affinity: how users of a region respond to a category / a brand. These carry
-- what the shop knows about a user's taste before the user has a history of their own.
CREATE TABLE IF NOT EXISTS region_category_features (
    dt DATE NOT NULL,
    region VARCHAR NOT NULL,
    category VARCHAR NOT NULL,
    rc_impressions_28d BIGINT,
    rc_clicks_28d BIGINT,
    rc_purchases_28d BIGINT,
    rc_ctr_28d DOUBLE PRECISION,
    rc_purchase_rate_28d DOUBLE PRECISION
);

CREATE TABLE IF NOT EXISTS region_brand_features (
    dt DATE NOT NULL,
    region VARCHAR NOT NULL,
    brand VARCHAR NOT NULL,
    rb_impressions_28d BIGINT,
    rb_clicks_28d BIGINT,
    rb_purchases_28d BIGINT,
    rb_ctr_28d DOUBLE PRECISION,
    rb_purchase_rate_28d DOUBLE PRECISION
);
