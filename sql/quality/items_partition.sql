SELECT dt, item_id, title, category, brand, price, valid_from FROM items WHERE dt = :dt
