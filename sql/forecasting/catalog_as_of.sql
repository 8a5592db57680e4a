-- Every item the catalog knew up to :to_day, with its newest attributes and price.
SELECT item_id, category, brand, price
FROM (
    SELECT item_id, category, brand, price,
           ROW_NUMBER() OVER (PARTITION BY item_id ORDER BY valid_from DESC, dt DESC) AS newest
    FROM items
    WHERE dt <= :to_day
) ranked
WHERE newest = 1
ORDER BY item_id
