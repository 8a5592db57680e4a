-- Each catalog delivery's price of an item, as of the day it became valid, up to :to_day (the
-- forecast's price history, forward-filled; planned prices delivered ahead are included).
SELECT item_id, CAST(valid_from AS DATE) AS day, MAX(price) AS price
FROM items
WHERE dt <= :to_day
GROUP BY item_id, CAST(valid_from AS DATE)
ORDER BY item_id, day
