-- Whether any order line was ordered in [:from_day, :until) (else the forecast reads purchase
-- events, when FLYWHEEL_FORECAST_SOURCE is auto).
SELECT COUNT(*) > 0 FROM (
    SELECT 1 FROM orders
    WHERE order_time >= :from_day AND order_time < :until
    LIMIT 1
) any_line
