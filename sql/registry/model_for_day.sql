-- The challenger trained for day :dt (the newest, should a day have been retrained).
SELECT model_version FROM model_registry WHERE dt = :dt ORDER BY created_at DESC LIMIT 1
