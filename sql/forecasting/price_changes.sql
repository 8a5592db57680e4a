-- Each catalog delivery's price of an item: from the day it is valid, known from the day it was
-- delivered (dt), up to deliveries of :to_day. A backtest origin sees only the deliveries before
-- it; planned prices delivered ahead of their day are legitimately known in advance.
SELECT item_id, CAST(valid_from AS DATE) AS day, dt AS known, MAX(price) AS price
FROM items
WHERE dt <= :to_day
GROUP BY item_id, CAST(valid_from AS DATE), dt
ORDER BY item_id, day, known
