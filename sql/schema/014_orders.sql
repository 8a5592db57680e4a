-- Order lines (docs/orders.md): what a shop sold, from its order system's daily deliveries or
-- a one-off export of its history (`flywheel import orders`). `dt` is the delivery day the
-- line was ingested for; `order_time` when it was ordered (an import puts each line in its
-- own day). user_id is a keyed pseudonym, like everywhere else.
CREATE TABLE IF NOT EXISTS orders (
    dt DATE NOT NULL,
    order_id VARCHAR NOT NULL,
    user_id VARCHAR NOT NULL,
    item_id VARCHAR NOT NULL,
    quantity BIGINT NOT NULL,
    price DOUBLE PRECISION,
    order_time TIMESTAMP NOT NULL,
    source_file VARCHAR NOT NULL,
    line_no BIGINT NOT NULL
);
